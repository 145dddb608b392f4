#!/usr/bin/env bash
# How the embedded `default` network (sample-data/default) is made, on this CPU or on a CUDA GPU (DEVICE=cuda):
#   bash benchmarks/foundation/train.sh [OUT_DIR]        (default OUT_DIR=runs/foundation)
# 1. data: 60 SynthSeg-style scans from the shared real label map (no real voxels), 24 hybrids of the real scan
#    (its voxels warped and re-enhanced into other contrast phases), the real scan itself, 24 phantoms at 3 mm;
# 2. run A ("held-out"): from the previous default, trained on the synthetic scans and phantoms only, then scored
#    on the real scan it never saw (the model card's generalisation figure);
# 3. run B (the embedded network): run A continued with the hybrids and the real scan added.
# Both runs are resumable: rerun with INIT_A / INIT_B pointing at a saved network; TIME_A / TIME_B cap minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-runs/foundation}
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
REAL=${REAL:-../shared/data/real-ct/abdomen-pelvis-3mm}
EPOCHS_A=${EPOCHS_A:-14}; TIME_A=${TIME_A:-55}; EPOCHS_B=${EPOCHS_B:-7}; TIME_B=${TIME_B:-40}
INIT_A=${INIT_A:-sample-data/default}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
seg() { "$PY" -m arena_seg.cli "$@"; }
ORGANS=(--label liver --label spleen --label kidney_right --label kidney_left --label aorta --label stomach)
BASE=(--num-samples 2 --val 4 --val-every 2 --lr 1e-3 --device "$DEVICE" --sampler classes --augment strong)

[ -d "$OUT/synth" ] || seg synth --label "$REAL/label_full.nii.gz" --out "$OUT/synth" --n 60 --seed 2026
[ -d "$OUT/phantoms" ] || seg phantoms --out "$OUT/phantoms" --n 24 --seed 1000 --spacing 3 3 3
if [ ! -d "$OUT/hybrid" ]; then
  seg synth --label "$REAL/label_full.nii.gz" --image "$REAL/image.nii.gz" --out "$OUT/hybrid" --n 24 \
    --seed 2027 --prefix hybrid
  # the real scan itself, with the organs in the phantoms' ids
  "$PY" - "$REAL" "$OUT/hybrid" <<'PY'
import sys, numpy as np, nibabel as nib
from arena_seg.data.synth import totalseg_v2_classes
from arena_seg.data.synth.tissues import output_ids
from arena_seg.organs import PHANTOM_LABELS
from arena_seg.files import write_nifti
real, out = sys.argv[1], sys.argv[2]
lab = nib.load(f"{real}/label_full.nii.gz"); img = nib.load(f"{real}/image.nii.gz")
lut = np.zeros(256, np.uint8)
for cid, oid in output_ids(totalseg_v2_classes(), PHANTOM_LABELS).items(): lut[cid] = oid
write_nifti(f"{out}/images/real_000.nii.gz", np.asarray(img.dataobj), img.affine)
write_nifti(f"{out}/labels/real_000.nii.gz", lut[np.asarray(lab.dataobj)], lab.affine)
PY
fi

[ -d "$OUT/held-out" ] || seg pretrain --images "$OUT/synth/images" "$OUT/phantoms/images" \
  --labels "$OUT/synth/labels" "$OUT/phantoms/labels" "${ORGANS[@]}" "${BASE[@]}" --out "$OUT/held-out" \
  --epochs "$EPOCHS_A" --init "$INIT_A" --time-limit "$TIME_A"
seg evaluate --model "$OUT/held-out" --images "$REAL/image.nii.gz" --labels "$REAL/label_full.nii.gz" \
  --label liver=5 --label spleen=1 --label kidney_right=2 --label kidney_left=3 --label aorta=52 --label stomach=6 \
  --json "$OUT/held-out-real.json"

INIT_B=${INIT_B:-$OUT/held-out}
[ -d "$OUT/default" ] || seg pretrain --images "$OUT/synth/images" "$OUT/hybrid/images" "$OUT/phantoms/images" \
  --labels "$OUT/synth/labels" "$OUT/hybrid/labels" "$OUT/phantoms/labels" "${ORGANS[@]}" "${BASE[@]}" \
  --out "$OUT/default" --epochs "$EPOCHS_B" --init "$INIT_B" --time-limit "$TIME_B"
echo "networks: $OUT/held-out (never saw the real scan) and $OUT/default (the embedded one)"
