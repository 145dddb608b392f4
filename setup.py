"""Packaging beyond pyproject.toml: the MONAI Label app and the embedded default model ship inside the wheel.

``apps/arena_seg`` is installed as ``arena_seg/_app`` and ``sample-data/default`` as ``arena_seg/_sample/default``,
so that ``pip install .`` (not only the editable install) can ``arena-seg serve``; :mod:`arena_seg.resources` finds
them there, or in the source tree. The package list is computed, so a new subpackage of either ships by itself.
"""

from setuptools import find_namespace_packages, find_packages, setup

APP, SAMPLE = "arena_seg._app", "arena_seg._sample"
app_packages = find_namespace_packages("apps/arena_seg", include=["lib", "lib.*"], exclude=["*.__pycache__"])

setup(
    packages=[*find_packages("src"), APP, *(f"{APP}.{name}" for name in app_packages), SAMPLE, f"{SAMPLE}.default"],
    package_dir={"": "src", APP: "apps/arena_seg", SAMPLE: "sample-data"},
    package_data={"arena_seg": ["py.typed"], APP: ["README.md"], f"{SAMPLE}.default": ["*.md", "*.json",
                                                                                      "*.safetensors"]},
    exclude_package_data={APP: ["model/*", "logs/*", "bin/*"]},
)
