"""arena-seg's MONAI Label app: foundation inference, few-shot ARENA training, model versions, uncertainty strategy.

MONAI Label imports this package as ``lib`` (the app folder is put on ``sys.path``); it imports ``arena_seg``.
"""
