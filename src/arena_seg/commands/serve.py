"""`arena-seg serve`: start the MONAI Label server of apps/arena_seg for 3D Slicer, OHIF or any MONAI Label client.

With no studies (``--studies`` missing or empty) it writes synthetic CT phantoms there first (images only; their
truth labels go to ``<studies>-truth/``) and, unless ``--conf labels`` is given, learns ``gallbladder``. Then it
replaces itself with ``monailabel start_server``, run with this environment's ``bin`` first on PATH (monailabel
starts its training subprocesses with the first ``python`` on PATH).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from arena_seg.errors import InputError
from arena_seg.resources import app_dir
from arena_seg.serving import PHANTOM_MARKER, free_port, server_alive, study_volumes, write_phantom_studies

# free_port and server_alive are imported from here by the app's tests
__all__ = ["DEMO_ORGAN", "PHANTOM_MARKER", "add_parser", "free_port", "run", "server_alive", "server_command",
           "write_phantom_studies"]

DEMO_ORGAN = "gallbladder"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="start the MONAI Label server (3D Slicer, OHIF)", description=__doc__)
    p.add_argument("--studies", default="runs/studies",
                   help="folder of CT volumes (.nii.gz/.nrrd); phantoms are written there if it has none "
                        "(default runs/studies)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--conf", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                   help="app option, repeatable (see the --conf table in the README), e.g. --conf labels pancreas")
    p.add_argument("--app", default=str(app_dir()),
                   help="MONAI Label app folder (default: the app installed with arena-seg, apps/arena_seg)")
    p.add_argument("--phantoms", type=int, default=6, help="phantom studies written when there are none (default 6)")
    p.add_argument("--phantom-spacing", type=float, default=3.0, help="their voxel size in mm (default 3)")
    p.set_defaults(func=run)


def server_command(args: argparse.Namespace, studies: Path) -> tuple[list[str], dict[str, str]]:
    """The ``monailabel start_server`` command line and its environment."""
    app = Path(args.app).resolve()
    if not (app / "main.py").is_file():
        raise InputError(f"--app {app}: no main.py there; give the apps/arena_seg folder of the repository")
    bin_dir = Path(sys.executable).parent
    exe = bin_dir / "monailabel"
    if not exe.is_file():
        found = shutil.which("monailabel")
        if not found:
            raise InputError("monailabel is not installed in this environment; run `make install`")
        exe = Path(found)
    conf = [list(pair) for pair in args.conf]
    if (studies / PHANTOM_MARKER).is_file() and not any(k == "labels" for k, _ in conf):
        conf.append(["labels", DEMO_ORGAN])
    if "site-packages" in app.parts and not any(k == "model_dir" for k, _ in conf):
        # an installed app's own folder is no place for versions: keep them beside the studies
        conf.append(["model_dir", str(studies.resolve().parent / f"{studies.name}-model")])
    cmd = [str(exe), "start_server", "--app", str(app), "--studies", str(studies.resolve()), "--host", args.host,
           "--port", str(args.port)]
    for key, value in conf:
        cmd += ["--conf", key, value]
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MONAI_LABEL_TRACKING_ENABLED", "false")  # no mlflow store here
    return cmd, env


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise InputError(f"--port {args.port}: give 1..65535")
    studies = Path(args.studies)
    if not study_volumes(studies):
        print(f"no studies in {studies}: writing {args.phantoms} phantom CT volumes there "
              f"({args.phantom_spacing:g} mm)...", flush=True)
        write_phantom_studies(studies, args.phantoms, args.phantom_spacing)
    cmd, env = server_command(args, studies)
    if Path(".env").is_file():
        print("warning: ./.env exists; monailabel reads its settings silently (left by `--dryrun`?)", flush=True)
    host = args.host if args.host not in ("0.0.0.0", "::") else "<this machine's address>"
    print(f"In 3D Slicer's MONAI Label module, set the server to http://{host}:{args.port}", flush=True)
    print("$ " + " ".join(cmd), flush=True)
    os.execve(cmd[0], cmd, env)
    return 0  # not reached
