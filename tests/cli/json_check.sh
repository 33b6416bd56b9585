#!/usr/bin/env bash
# json_check.sh LORE JOURNAL_FUZZ: every event of fuzzed journals, dumped by `lore journal events
# --json`, is one valid JSON object per line (jq) that reads back as written (journal_fuzz check);
# ls and stats --json parse too, and the text forms of the same journal print without error.
set -euo pipefail
LORE=$1
FUZZ=$2
if ! command -v jq >/dev/null; then
  echo "json_check: FAILED: jq is not installed (scripts/setup.sh installs it)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A few fixed seeds (reproducible), and one more from $JSON_CHECK_SEED when set.
seeds=(1 2 3 20240611 ${JSON_CHECK_SEED:-})
n=1500
for seed in "${seeds[@]}"; do
  db="$tmp/fuzz-$seed.db"
  out="$tmp/out-$seed.jsonl"
  "$FUZZ" write "$db" "$seed" "$n"
  : >"$out"
  while IFS= read -r id; do
    "$LORE" journal events --db "$db" --json "$id" >>"$out"
    "$LORE" journal events --db "$db" "$id" >/dev/null
  done < <("$FUZZ" ids)
  lines=$(wc -l <"$out")
  if [[ $lines -ne $n ]]; then
    echo "json_check: seed $seed: $lines lines for $n events" >&2
    exit 1
  fi
  # jq: every line is one JSON value, and every value an object.
  objects=$(jq -c 'select(type == "object")' <"$out" | wc -l)
  if [[ $objects -ne $n ]]; then
    echo "json_check: seed $seed: $objects JSON objects for $n lines" >&2
    exit 1
  fi
  "$FUZZ" check "$seed" "$n" <"$out"
  "$LORE" journal ls --db "$db" --json | jq -e -s 'length == 4 and all(.[]; .highest_seq > 0)' >/dev/null
  "$LORE" journal stats --db "$db" --json | jq -e ".events == $n and .ids == 4" >/dev/null
  "$LORE" journal stats --db "$db" >/dev/null
  "$LORE" journal ls --db "$db" >/dev/null
done
echo "json_check: ${#seeds[@]} fuzzed journals of $n events: every line valid and read back"
