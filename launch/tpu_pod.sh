#!/bin/bash
# Train on a Cloud TPU VM or TPU pod slice: the same command on every host.
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a bash launch/tpu_pod.sh \
#       configs/mvtrack4gen_recammaster.py gs://my-bucket/runs/mvtrack4gen [--config.x=y ...]
#
# One JAX process per host; on a multi-host slice `mvtrack_jax.train` joins the process group
# through JAX's TPU auto-detection (TPU_WORKER_HOSTNAMES), so no coordinator flags are needed.
# The workdir should be on GCS (Orbax writes gs:// paths) so every host sees the checkpoints.
# Set REPO_DIR to where the repository (and its .venv) lives on the hosts (copy it first, e.g.
# with `gcloud compute tpus tpu-vm scp --recurse . $TPU_NAME:~/mvtrack_jax --worker=all`).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  echo "usage: TPU_NAME=... ZONE=... $0 CONFIG WORKDIR [--config.x=y ...]" >&2
  exit 2
fi
CONFIG=$1; WORKDIR=$2; shift 2
: "${TPU_NAME:?set TPU_NAME}"; : "${ZONE:?set ZONE}"
REPO_DIR=${REPO_DIR:-'~/mvtrack_jax'}
PROJECT_FLAG=${PROJECT:+--project=$PROJECT}
gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" $PROJECT_FLAG --worker=all --command="\
  cd $REPO_DIR && .venv/bin/python -m mvtrack_jax.train --config=$CONFIG --workdir=$WORKDIR $* \
  2>&1 | tee -a train_\$(hostname).log"
