"""Strategy `random`: an unlabelled scan at random, the ones not offered for longest most likely.

Stock MONAI Label weighs each scan by the seconds since it was last offered; a scan offered within the same second
weighs 0, so pressing Next Sample twice quickly with one unlabelled scan left fails with a 500 ("Total of weights
must be greater than zero"). Here every scan weighs at least one second.
"""

from __future__ import annotations

import random
import time
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy


class RandomSample(Strategy):
    def __init__(self) -> None:
        super().__init__("Random Strategy")

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any] | None:
        images = datastore.get_unlabeled_images(request.get("label_tag"), request.get("labels"))
        if not images:
            return None
        strategy = request["strategy"]
        now = int(time.time())
        weights = [max(1, now - datastore.get_image_info(i).get("strategy", {}).get(strategy, {}).get("ts", 0))
                   for i in images]
        index = random.choices(range(len(images)), weights=weights)[0]
        return {"id": images[index], "weight": weights[index]}
