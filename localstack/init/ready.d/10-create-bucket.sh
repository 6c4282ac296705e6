#!/bin/bash
# LocalStack init hook (READY stage), mounted into /etc/localstack/init/ready.d/
# by localstack/docker-compose.yml: creates the lake bucket. Idempotent.
set -euo pipefail
bucket="${LAMBDALAKE_BUCKET:-lambdalake}"
if awslocal s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  echo "bucket $bucket already exists"
else
  awslocal s3api create-bucket --bucket "$bucket"
  echo "created bucket $bucket"
fi
