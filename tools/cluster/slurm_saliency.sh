#!/bin/bash
# Saliency maps for an archive of images over a Slurm array job: array task K explains shard
# K of N (`--shard K/N`, a stable partition of the file names below ARCHIVE), writes its maps
# under OUT mirroring the archive's folders, and appends one JSON line per finished image to
# its own OUT/shard_K.jsonl. A task that is killed, pre-empted or requeued resumes where it
# stopped: its rerun skips the images its JSON lines hold. No coordinator is needed.
#
#   sbatch --array=0-15 tools/cluster/slurm_saliency.sh
#   ARCHIVE=/data/xrays WEIGHTS=/models/xrays.safetensors OUT=/results/xrays sbatch --array=0-63 tools/cluster/slurm_saliency.sh
#
# Outside Slurm it runs as one task (K and N from SLURM_ARRAY_TASK_ID and
# SLURM_ARRAY_TASK_COUNT, 0 of 1 when unset): tests/cli.rs runs it that way, three times over
# one archive, and checks that every image is explained exactly once.
#SBATCH --job-name=gradlens-saliency
#SBATCH --array=0-15
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=gradlens-saliency_%A_%a.log
set -euo pipefail

ARCHIVE=${ARCHIVE:-/data/archive}
WEIGHTS=${WEIGHTS:-/models/model.safetensors}
OUT=${OUT:-/results/saliency}
METHOD=${METHOD:-gradcam}
TASK=${SLURM_ARRAY_TASK_ID:-0}
TASKS=${SLURM_ARRAY_TASK_COUNT:-1}

mkdir -p "$OUT"
gradlens saliency "$ARCHIVE" --weights "$WEIGHTS" --method "$METHOD" --batch 16 \
    --shard "$TASK/$TASKS" \
    --raw-out "$OUT/maps" \
    --jsonl "$OUT/shard_$TASK.jsonl" \
    --manifest-out "$OUT/manifest_$TASK.json"
