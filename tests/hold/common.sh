# Shared by tests/hold/*.sh: python with boto3 and moto, the writelane binary, and the
# servers (redis-server, a moto server for DynamoDB and S3, the IAM lab) started here
# unless given in WRITELANE_TEST_REDIS_URL / WRITELANE_TEST_MOTO_ENDPOINT.
#
# Source it after setting `stores` (the stores the run needs: file redis dynamodb s3).

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-$root/bindings-python/.venv/bin/python}"
if ! "$py" -c 'import boto3, moto.server' >/dev/null 2>&1; then
  echo "tests/hold: $py lacks boto3 or moto: set PYTHON, or run bash tests/iamlab/setup.sh" >&2
  exit 2
fi

tmp="$(mktemp -d)"
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap stop EXIT

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

needs() { case " $stores " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# The binary: $WRITELANE_BIN, else built here with the features the stores need.
features=()
needs redis && features+=(redis)
{ needs dynamodb || needs s3; } && features+=(aws)
bin="${WRITELANE_BIN:-}"
if [ -z "$bin" ]; then
  feature_list="$(IFS=,; echo "${features[*]:-file}")"
  (cd "$root" && cargo build -q --release -p writelane-cli --features "file,$feature_list") >&2
  bin="$root/target/release/writelane"
fi

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 300); do
    if "$py" -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "tests/hold: $2 did not listen on port $1" >&2
  exit 1
}

if needs redis && [ -z "${WRITELANE_TEST_REDIS_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "tests/hold: redis-server is not installed" >&2; exit 2; }
  port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
  pids+=($!)
  wait_port "$port" redis-server
  export WRITELANE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
fi
if { needs dynamodb || needs s3; } && [ -z "${WRITELANE_TEST_MOTO_ENDPOINT:-}" ]; then
  port=$(free_port)
  PYTHONWARNINGS=ignore "$py" "$root/tests/iamlab/moto_atomic.py" "$port" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$port" "moto server"
  export WRITELANE_TEST_MOTO_ENDPOINT="http://127.0.0.1:$port"
fi

# The store URL for a store name, creating the table or bucket on moto (each run gets
# its own, so reruns against a long-lived server start clean).
store_url() {
  local run="hold$$x$RANDOM"
  case "$1" in
    file) echo "file://$tmp/leases-$run.json" ;;
    redis) echo "$WRITELANE_TEST_REDIS_URL" ;;
    dynamodb)
      "$py" - "$WRITELANE_TEST_MOTO_ENDPOINT" "$run" <<'PY'
import sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="us-east-1")
ddb.create_table(TableName=sys.argv[2], BillingMode="PAY_PER_REQUEST",
                 KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
                 AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}])
PY
      echo "dynamodb://$run?region=us-east-1&endpoint=$WRITELANE_TEST_MOTO_ENDPOINT" ;;
    s3)
      "$py" - "$WRITELANE_TEST_MOTO_ENDPOINT" "$run" <<'PY'
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket=sys.argv[2])
PY
      echo "s3://$run/leases/?region=us-east-1&endpoint=$WRITELANE_TEST_MOTO_ENDPOINT" ;;
    *) echo "tests/hold: unknown store $1 (file, redis, dynamodb, s3)" >&2; exit 2 ;;
  esac
}
