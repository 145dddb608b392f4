"""The server attacked over HTTP as an outsider would: names that are paths, detached-header formats, hostile
archives, symlinks, checks bypassed through the body, cross-origin pages, a blocked event loop, malformed requests
and integrity breaks. Each request must get a 4xx with a message, the server must keep serving, nothing inside
the studies and model folders may change, and nothing outside them may be created, read back or removed (a
sentinel folder lies beside them).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import signal
import tarfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
from app_support import GALLBLADDER, Server, snapshot, truth

from arena_seg.commands.serve import free_port, server_alive

SECRET = b"sentinel secret: must never be served\n"
IMAGES = ["phantom_000", "phantom_001"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, phantom_dir, coarse_network_dir):
    root = tmp_path_factory.mktemp("security")
    studies, sentinel, tmp = root / "studies", root / "sentinel", root / "tmp"
    for folder in (studies, sentinel, tmp):
        folder.mkdir()
    for name in IMAGES:
        shutil.copy(phantom_dir / "images" / f"{name}.nii.gz", studies)
    (sentinel / "secret.txt").write_bytes(SECRET)
    (sentinel / "victim.nii.gz").write_bytes((phantom_dir / "images" / "phantom_000.nii.gz").read_bytes())
    # symlinks an attacker would plant (or an archive would have made): an image and a label leading outside
    os.symlink(sentinel / "victim.nii.gz", studies / "linked.nii.gz")
    (studies / "labels" / "final").mkdir(parents=True)
    os.symlink(sentinel / "secret.txt", studies / "labels" / "final" / "phantom_001.nii.gz")
    srv = Server(root, studies, root / "model", coarse_network_dir, free_port(), upload_limit_mb=8,
                 env={"TMPDIR": str(tmp)})
    srv.start()
    try:
        yield srv
    finally:
        srv.kill(signal.SIGTERM)


def outside(srv: Server) -> dict[str, str]:
    """Everything beside the studies and model folders, and the sentinel's contents (server.log left out)."""
    root = srv.root
    listing = {p.name: "" for p in root.iterdir() if p.name not in ("studies", "model", "tmp", "server.log")}
    return {**listing, **snapshot(root / "sentinel")}


def leftover_temp(srv: Server) -> list[str]:
    """Files the server left in its temp folder (its own model cache and logs aside)."""
    return sorted(str(p.relative_to(srv.root / "tmp")) for p in (srv.root / "tmp").rglob("*") if p.is_file())


def nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def put_label(srv: Server, path: Path, tag: str = "final", image: str = "phantom_000", name: str | None = None,
              params: str = "{}") -> requests.Response:
    with open(path, "rb") as f:
        return srv.put("/datastore/label", params={"image": image, "tag": tag}, files={"label": (name or path.name, f)},
                       data={"params": params})


def put_image(srv: Server, path: Path, image: str, name: str | None = None) -> requests.Response:
    with open(path, "rb") as f:
        return srv.put("/datastore/image", params={"image": image}, files={"file": (name or path.name, f)})


def put_session(srv: Server, data: bytes, name: str) -> requests.Response:
    return srv.put("/session/", params={"uncompress": "true"}, files={"files": (name, data)})


def tar_with(member: tarfile.TarInfo, data: bytes = b"x" * 16, mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        member.size = len(data) if member.isfile() else 0
        tf.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return out.getvalue()


def tar_link(name: str, target: str, kind: bytes) -> bytes:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return tar_with(member)


def zip_with(name: str, data: bytes = b"x" * 16) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(name, data)
    return out.getvalue()


def raw_get(srv: Server, path: str) -> tuple[int, str]:
    """GET a path exactly as written (requests would normalise '..' away)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read().decode(errors="replace")


@pytest.fixture(scope="module")
def files(tmp_path_factory, phantom_dir) -> dict[str, Path]:
    """Good and hostile upload files."""
    tmp = tmp_path_factory.mktemp("attack-files")
    label, affine = truth(phantom_dir, "phantom_000")
    organ = (label == GALLBLADDER).astype(np.uint8)
    out = {"label": nifti(organ, affine, tmp / "label.nii.gz"),
           "nan2d": nifti(np.full((4, 4), np.nan, np.float32), np.eye(4), tmp / "nan2d.nii.gz")}
    secret_path = tmp_path_factory.getbasetemp() / "outside-secret.txt"
    secret_path.write_bytes(SECRET * 100)
    nrrd_head = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
    for name, text in {
        "detached.nrrd": f"{nrrd_head}data file: {secret_path}\n",
        "detached_caps.nrrd": f"NRRD0005\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                              f"datafile: {secret_path}\n",
        "detached.seg.nrrd": f"NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
                             f"Segment0_Name:=gallbladder\nSegment0_LabelValue:=1\ndata file: {secret_path}\n",
        "detached.mhd": f"ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
                        f"ElementDataFile = {secret_path}\n",
        "detached.nhdr": f"{nrrd_head}data file: {secret_path}\n",
    }.items():
        (tmp / name).write_text(text)
        out[name] = tmp / name
    # a small gzip that claims (and holds) a volume far larger than its image: refused from its header
    bomb = tmp / "bomb.nii.gz"
    nifti(np.zeros((320, 320, 320), np.uint8), affine, bomb)
    out["bomb"] = bomb
    return out


Attack = Callable[[Server, dict], requests.Response]

#: (class of attack, request, expected status, a word the message must contain)
ATTACKS: list[tuple[str, Attack, int, str]] = [
    # 1. label tags are paths
    *[(f"1 tag {tag!r} on {verb}", fn, 400, "" if verb == "HEAD" else "tag")
      for tag in ("/tmp", "../../x", "../final", "labels/../../..", "%2e%2e/x")
      for verb, fn in (
          ("PUT", lambda s, f, t=tag: put_label(s, f["label"], tag=t)),
          ("GET", lambda s, f, t=tag: s.get("/datastore/label", params={"label": "phantom_000", "tag": t})),
          ("HEAD", lambda s, f, t=tag: requests.head(s.url + "/datastore/label",
                                                     params={"image": "phantom_000", "tag": t})),
          ("DELETE", lambda s, f, t=tag: requests.delete(s.url + "/datastore/label",
                                                         params={"id": "phantom_000", "tag": t})),
          ("label info", lambda s, f, t=tag: s.put("/datastore/label/info", params={"label": "phantom_000", "tag": t},
                                                   data={"info": "{}"})),
      )],
    ("1 infer label_tag with save_label", lambda s, f: s.post("/infer/foundation", params={"image": "phantom_000"},
                                                              data={"params": json.dumps({"save_label": True,
                                                                                          "label_tag": "../../x"})}),
     400, "tag"),
    ("1 batch infer label_tag", lambda s, f: s.post("/batch/infer/foundation", json={"label_tag": "/tmp/x"}), 400,
     "tag"),
    # 2. tag aliases
    *[(f"2 tag alias {tag!r}", lambda s, f, t=tag: put_label(s, f["nan2d"], tag=t), 400, "tag")
      for tag in ("./final", "final/.", "FINAL", "Final", "final ", " original", "final\\", "")],
    # 3. detached-header formats
    *[(f"3 label {name}", lambda s, f, n=name: put_label(s, f[n]), 400, "detached" if "nrrd" in name and
       not name.endswith(".nhdr") else "self-contained") for name in ("detached.nrrd", "detached_caps.nrrd",
                                                                      "detached.seg.nrrd", "detached.mhd",
                                                                      "detached.nhdr")],
    ("3 original label detached.nrrd", lambda s, f: put_label(s, f["detached.nrrd"], tag="original"), 400,
     "detached"),
    ("3 image detached.nrrd", lambda s, f: put_image(s, f["detached.nrrd"], "new_detached"), 400, "detached"),
    ("3 image .mhd", lambda s, f: put_image(s, f["detached.mhd"], "new_mhd"), 400, "self-contained"),
    ("3 infer upload detached.nrrd", lambda s, f: s.post("/infer/foundation", files={
        "file": ("scan.nrrd", f["detached.nrrd"].read_bytes())}), 400, "detached"),
    # 4. session archives
    ("4 tar member ../", lambda s, f: put_session(s, tar_with(tarfile.TarInfo("../../../sentinel/pwned")), "a.tar"),
     400, "outside"),
    ("4 tar member absolute", lambda s, f: put_session(s, tar_with(tarfile.TarInfo(f"{s.root}/sentinel/pwned")),
                                                       "a.tar"), 400, "outside"),
    ("4 tar symlink member", lambda s, f: put_session(s, tar_link("link", f"{s.root}/sentinel", tarfile.SYMTYPE),
                                                      "a.tar"), 400, "link"),
    ("4 tar hard link member", lambda s, f: put_session(s, tar_link("hard", f"{s.root}/sentinel/secret.txt",
                                                                    tarfile.LNKTYPE), "a.tar"), 400, "link"),
    ("4 zip member ../", lambda s, f: put_session(s, zip_with("../../sentinel/pwned"), "a.zip"), 400, "outside"),
    ("4 zip member with backslashes", lambda s, f: put_session(s, zip_with("..\\..\\sentinel\\pwned"), "a.zip"), 400,
     "outside"),
    ("4 tar.gz bomb", lambda s, f: put_session(s, tar_with(tarfile.TarInfo("big.bin"), b"\0" * (200 * 2**20),
                                                           "w:gz"), "a.tar.gz"), 400, "expands"),
    ("4 not an archive", lambda s, f: put_session(s, b"just bytes", "a.tar"), 400, "archive"),
    # 5. symlinks in the studies folder
    ("5 GET symlinked image", lambda s, f: s.get("/datastore/image", params={"image": "linked"}), 404, "not found"),
    ("5 HEAD symlinked image", lambda s, f: requests.head(s.url + "/datastore/image", params={"image": "linked"}),
     404, ""),
    ("5 DELETE symlinked image", lambda s, f: requests.delete(s.url + "/datastore/image", params={"id": "linked"}),
     404, "datastore"),
    ("5 infer symlinked image", lambda s, f: s.post("/infer/foundation", params={"image": "linked"}), 404,
     "datastore"),
    ("5 GET symlinked label", lambda s, f: s.get("/datastore/label", params={"label": "phantom_001", "tag": "final"}),
     404, "not found"),
    ("5 DELETE symlinked label", lambda s, f: requests.delete(s.url + "/datastore/label",
                                                              params={"id": "phantom_001", "tag": "final"}),
     404, "label"),
    # 6. checks bypassed through the body
    ("6 train body model", lambda s, f: s.post("/train/arena", json={"model": "foundation", "max_epochs": 1}), 400,
     "model"),
    ("6 train all: top-level body model", lambda s, f: s.post("/train/", json={"model": "foundation"}), 400,
     "model"),
    ("6 train all: body model", lambda s, f: s.post("/train/", json={"arena": {"model": "x"}}), 400, "model"),
    ("6 batch body model", lambda s, f: s.post("/batch/infer/foundation", json={"model": "arena"}), 400, "model"),
    ("6 max_epochs 1e9", lambda s, f: s.post("/train/arena", json={"max_epochs": 10**9}), 400, "max_epochs"),
    ("6 max_epochs inf", lambda s, f: s.post("/train/arena", json={"max_epochs": "inf"}), 400, "max_epochs"),
    ("6 rank 1e9", lambda s, f: s.post("/train/arena", json={"rank": 10**9}), 400, "rank"),
    ("6 num_samples 1e9", lambda s, f: s.post("/train/arena", json={"num_samples": 10**9}), 400, "num_samples"),
    ("6 seed 1e30", lambda s, f: s.post("/train/arena", json={"seed": 10**30}), 400, "seed"),
    ("6 lam 1e12", lambda s, f: s.post("/train/arena", json={"lam": 1e12}), 400, "lam"),
    ("6 batch images as paths", lambda s, f: s.post("/batch/infer/foundation", json={
        "images": ["../../etc/passwd", "/etc/passwd"]}), 400, "datastore"),
    ("6 batch images not a list", lambda s, f: s.post("/batch/infer/foundation", json={"images": "/etc"}), 400,
     "images"),
    ("6 batch max_batch_size", lambda s, f: s.post("/batch/infer/foundation", json={"max_batch_size": "x"}), 400,
     "max_batch_size"),
    # 7. cross-origin requests
    *[(f"7 origin {origin} {verb}", fn, 403, "cross-origin") for origin in ("http://evil.example", "null",
                                                                             "http://127.0.0.1.evil.example")
      for verb, fn in (
          ("GET /info/", lambda s, f, o=origin: s.get("/info/", headers={"Origin": o})),
          ("preflight PUT label", lambda s, f, o=origin: requests.options(
              s.url + "/datastore/label", headers={"Origin": o, "Access-Control-Request-Method": "PUT"})),
          ("simple POST train", lambda s, f, o=origin: s.post("/train/arena", data="x",
                                                              headers={"Origin": o, "Content-Type": "text/plain"})),
      )],
    ("7 <img> on another site (no Origin)", lambda s, f: s.get("/datastore/image", params={"image": "phantom_000"},
                                                                headers={"Sec-Fetch-Site": "cross-site"}), 403,
     "cross-origin"),
    ("7 DNS rebinding (same origin by name)", lambda s, f: s.post("/train/arena", json={}, headers={
        "Host": f"rebind.example:{s.port}", "Origin": f"http://rebind.example:{s.port}"}), 403, "cross-origin"),
    # 8. denial of service
    ("8 gzip label claiming 320^3", lambda s, f: put_label(s, f["bomb"]), 400, "voxels"),
    ("8 gzip original label claiming 320^3", lambda s, f: put_label(s, f["bomb"], tag="original"), 400, "voxels"),
    # 9. malformed requests
    ("9 params not JSON", lambda s, f: s.post("/infer/foundation", params={"image": "phantom_000"},
                                              data={"params": "{nope"}), 400, "JSON"),
    ("9 params a list", lambda s, f: s.post("/infer/foundation", params={"image": "phantom_000"},
                                            data={"params": "[1, 2]"}), 400, "object"),
    ("9 label params a string", lambda s, f: put_label(s, f["label"], params='"x"'), 400, "object"),
    ("9 image info not JSON", lambda s, f: s.put("/datastore/image/info", params={"image": "phantom_000"},
                                                 data={"info": "nope"}), 400, "JSON"),
    ("9 NUL in an image id", lambda s, f: s.post("/infer/foundation", params={"image": "phantom_000\x00"}), 400,
     "control"),
    ("9 NUL in a download", lambda s, f: s.get("/datastore/image", params={"image": "a\x00b"}), 400, "control"),
    ("9 logs lines=1e30", lambda s, f: s.get("/logs/", params={"lines": "1e30"}), 400, "lines"),
    ("9 logs lines=-1", lambda s, f: s.get("/logs/", params={"lines": "-1"}), 400, "lines"),
    ("9 PUT /model/foundation", lambda s, f: s.put("/model/foundation", files={"file": ("x.pt", b"123")}), 405,
     "training"),
    ("9 DELETE /model/arena", lambda s, f: requests.delete(s.url + "/model/arena"), 404, "training"),
    ("9 proxy on a local datastore", lambda s, f: s.get("/proxy/dicom/qido/studies"), 404, "DICOMweb"),
    ("9 dataset export, no labels", lambda s, f: s.get("/datastore/dataset"), 404, "label"),
    ("9 session id as a path", lambda s, f: s.post("/infer/foundation", params={"session_id": "../../x"}), 400,
     "session_id"),
    ("9 infer with no image", lambda s, f: s.post("/infer/foundation"), 400, "image"),
    ("9 infer output=dicom_seg on a local datastore", lambda s, f: s.post(
        "/infer/foundation", params={"image": "phantom_000", "output": "dicom_seg"}), 400, "DICOMweb"),
    ("9 image info of an unknown image", lambda s, f: s.put("/datastore/image/info", params={"image": "nope"},
                                                            data={"info": "{}"}), 404, "datastore"),
    ("9 unknown scoring method", lambda s, f: s.post("/scoring/nope", json={}), 404, "scoring"),
    ("9 WSI inference", lambda s, f: s.post("/infer/wsi_v2/foundation", json={}), 404, "whole-slide"),
    ("8 infer on another request's upload", lambda s, f: s.post("/infer/foundation", params={
        "image": str(_planted_upload(s))}), 404, "datastore"),
    ("8 infer with another request's upload named in params", lambda s, f: s.post(
        "/infer/foundation", data={"params": json.dumps({"image": str(_planted_upload(s))})},
        files={"file": ("scan.nii.gz", b"not a volume")}), 404, "datastore"),
    # 10. integrity
    ("10 image with absurd spacing", lambda s, f: put_image(s, _spacing_image(s, 1e6), "absurd"), 400, "spacing"),
    ("10 image with NaN spacing", lambda s, f: put_image(s, _spacing_image(s, np.nan), "nan_spacing"), 400,
     "matrix"),
]


def _planted_upload(srv: Server) -> Path:
    """A file where another request's upload would lie in the server's temp folder."""
    folder = srv.root / "tmp" / "arena-request-other"
    folder.mkdir(exist_ok=True)
    shutil.copy(srv.studies / "phantom_000.nii.gz", folder / "tmpab12cd34.nii.gz")
    return folder / "tmpab12cd34.nii.gz"


def _spacing_image(srv: Server, spacing: float) -> Path:
    """A small CT whose first voxel size is ``spacing`` (NaN is written into the header's pixdim, as a corrupt
    file would hold it: nibabel refuses to build such an affine)."""
    data = np.asarray(nib.load(str(srv.studies / "phantom_000.nii.gz")).dataobj)[:8, :8, :8]
    img = nib.Nifti1Image(data, None)
    img.header["pixdim"][1:4] = [spacing, 6.0, 6.0]
    img.header.set_qform(None, code=0)
    img.header.set_sform(None, code=0)
    path = srv.root / "tmp-upload" / f"s{spacing}.nii.gz"
    nib.save(img, str(path))
    return path


@pytest.mark.slow
def test_attacks_are_refused_with_a_message_and_change_nothing(server, files):
    (server.root / "tmp-upload").mkdir(exist_ok=True)
    assert len(ATTACKS) >= 90
    inside_before, outside_before = snapshot(server.studies, server.model_dir), outside(server)
    temp_before = leftover_temp(server)  # what the server wrote at start (its logging config)
    failures = []
    for what, attack, status, word in ATTACKS:
        response = attack(server, files)
        text = response.text
        print(f"{what}: {response.status_code} {text[:140]}")
        if response.status_code != status or word.lower() not in text.lower():
            failures.append(f"{what}: {response.status_code} {text[:240]}")
        if SECRET.strip().decode() in text or "root:" in text:
            failures.append(f"{what}: the answer holds a file from outside")
        if response.headers.get("access-control-allow-origin"):
            failures.append(f"{what}: answered with CORS header {response.headers['access-control-allow-origin']}")
        assert server_alive(server.url), f"server down after {what}"
        if snapshot(server.studies, server.model_dir) != inside_before:
            failures.append(f"{what}: files inside changed")
            inside_before = snapshot(server.studies, server.model_dir)
        if outside(server) != outside_before:
            failures.append(f"{what}: files outside changed: {set(outside(server)) ^ set(outside_before)}")
            outside_before = outside(server)
    # paths requests would normalise, sent as written
    for path in ("/ohif/../../../etc/passwd", "/ohif/..", "/session/..", "/session/../../sentinel"):
        status, body = raw_get(server, path)
        if status // 100 != 4 or "root:" in body:
            failures.append(f"raw GET {path}: {status} {body[:200]}")
    shutil.rmtree(server.root / "tmp" / "arena-request-other")
    assert (server.root / "sentinel" / "secret.txt").read_bytes() == SECRET
    assert (server.root / "sentinel" / "victim.nii.gz").is_file()
    assert leftover_temp(server) == temp_before, "refused requests left files in the server's temp folder"
    assert not failures, "\n".join(failures)


@pytest.mark.slow
def test_legitimate_use_still_works_and_leaves_no_temp_files(server, files):
    """The same server still does its job: upload, label, infer on a datastore id and on an upload, a session,
    an export streamed without a file left behind."""
    temp_before = leftover_temp(server)
    label = put_label(server, files["label"], params=json.dumps({"label_info": [{"name": "gallbladder", "idx": 1}]}))
    assert label.status_code == 200, label.text
    assert server.get("/datastore/label", params={"label": "phantom_000", "tag": "final"}).status_code == 200
    upload = server.post("/infer/foundation", params={"output": "json"},
                         files={"file": ("scan.nii.gz", (server.studies / "phantom_000.nii.gz").read_bytes())})
    assert upload.status_code == 200, upload.text
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tf:
        tf.add(server.studies / "phantom_001.nii.gz", arcname="scan/phantom_001.nii.gz")
    session = put_session(server, archive.getvalue(), "scan.tar.gz")
    assert session.status_code == 200, session.text
    export = server.get("/datastore/dataset")
    assert export.status_code == 200, export.text
    names = zipfile.ZipFile(io.BytesIO(export.content)).namelist()
    assert "images/phantom_000.nii.gz" in names and "labels/phantom_000.nii.gz" in names
    assert not any("victim" in n or "secret" in n for n in names)
    # an image that leads outside is never listed, nor offered by Next Sample
    assert "linked" not in json.dumps(server.get("/datastore/", params={"output": "all"}).json())
    for _ in range(3):
        sample = server.post("/activelearning/random", json={})
        assert sample.status_code == 200 and sample.json()["id"] in IMAGES, sample.text
    # re-uploading a labelled image on another grid would leave its label off the grid: refused, label kept
    img = nib.load(str(server.studies / "phantom_000.nii.gz"))
    other = nifti(np.asarray(img.dataobj)[:, :, :-4], img.affine, server.root / "tmp-upload" / "other.nii.gz")
    before = snapshot(server.studies)
    refused = put_image(server, other, "phantom_000")
    assert refused.status_code == 409 and "grid" in refused.text, refused.text
    assert snapshot(server.studies) == before
    time.sleep(1)  # background tasks of the last responses
    assert leftover_temp(server) == temp_before


@pytest.mark.slow
def test_info_answers_quickly_while_an_inference_runs(server):
    """Inference runs off the event loop: /info/ answers several times *during* one inference, each in under a
    second. (A blocked loop answers nothing until the inference ends: at most one call completes meanwhile.)"""
    done: dict[str, float] = {}

    def infer() -> None:
        start = time.time()
        response = server.post("/infer/foundation", params={"image": "phantom_001", "output": "json"})
        done["status"], done["start"], done["end"] = response.status_code, start, time.time()

    worker = threading.Thread(target=infer)
    answered: list[tuple[float, float]] = []  # (sent, answered) of each /info/ call
    worker.start()
    while worker.is_alive():
        sent = time.time()
        assert server.get("/info/").status_code == 200
        answered.append((sent, time.time()))
        time.sleep(0.02)
    worker.join()
    assert done["status"] == 200
    during = [(a, b) for a, b in answered if done["start"] < a and b < done["end"]]
    print(f"inference {done['end'] - done['start']:.2f} s; /info/ answered {len(during)} times during it, "
          f"max {max([b - a for a, b in answered] or [0]):.3f} s")
    assert len(during) >= 3 and max(b - a for a, b in answered) < 1.0


# ---- the pieces, in-process --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_firewall_lets_listed_origins_and_non_browsers_through():
    from lib.compat.firewall import Firewall

    wall = Firewall(app=None, origins=["http://viewer.example:3000"])

    def scope(origin: str | None, path: str = "/info/", query: bytes = b"") -> dict:
        headers = [(b"host", b"127.0.0.1:8000")] + ([(b"origin", origin.encode())] if origin else [])
        return {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": headers}

    assert wall.check(scope(None)) is None  # Slicer, monailabel's client, curl
    assert wall.check(scope("http://viewer.example:3000")) is None
    assert wall.check(scope("http://127.0.0.1:8000")) is None  # the server's own /docs page
    assert wall.check(scope("http://viewer.example"))[0] == 403  # another port is another origin
    assert wall.check(scope("http://localhost:8000")) is not None  # Host says 127.0.0.1: another origin
    assert wall.check(scope(None, "/datastore/label", b"tag=final&label=x")) is None
    assert wall.check(scope(None, "/datastore/label", b"tag=final%00"))[0] == 400


@pytest.mark.slow
@pytest.mark.parametrize("value", ["*", "viewer.example", "http://viewer.example/path", "ftp://x"])
def test_cors_origins_conf_refuses_wildcards_and_paths(value, tmp_path):
    from lib.conf import AppConf

    from arena_seg.errors import InputError

    with pytest.raises(InputError, match="cors_origins"):
        AppConf.from_conf({"cors_origins": value}, tmp_path)
    assert AppConf.from_conf({"cors_origins": "http://a.example, https://b.example:8443/"}, tmp_path).cors_origins \
        == ("http://a.example", "https://b.example:8443")


@pytest.mark.slow
def test_a_second_server_leaves_a_live_writers_stage_alone(tmp_path):
    from lib.versions import VersionStore

    store = VersionStore(tmp_path / "arena")
    with store.new_version() as (_, stage):
        VersionStore(tmp_path / "arena").remove_stale_stages()  # another server starting on the same folder
        assert stage.is_dir()
    dead = store.versions_dir / ".stage-v009"
    dead.mkdir()
    (dead / ".owner").write_text("999999999")  # no such process
    store.remove_stale_stages()
    assert not dead.exists() and store.list() == ["v001"]
    assert not (store.versions_dir / "v001" / ".owner").exists()


@pytest.mark.slow
def test_zip_symlink_members_are_refused(tmp_path):
    from lib.archives import extract_archive

    from arena_seg.errors import InputError

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="link"):
        extract_archive(archive, tmp_path / "out", 2**20)
    assert not (tmp_path / "out").exists()
