# bench/lib.sh - sourced by bench/*.sh: one redis-benchmark run recorded as CSV rows, and the
# median of a column of numbers.

# median < numbers  -> the median ("-" when there are none)
median() {
  sort -g | awk '{a[NR] = $1}
    END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
          else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# bench_once RAW SYSTEM CONFIG PORT PIPELINE ROUND N [TESTS]
# Runs redis-benchmark -t TESTS (default set,get) with 64-byte values over 100,000 random
# keys from 50 clients, appends "system,config,op,pipeline,round,ops/s,p50,p99" rows to RAW.
# Returns 1 when redis-benchmark failed or printed an error.
bench_once() {
  local raw=$1 sys=$2 cfg=$3 port=$4 P=$5 round=$6 n=$7 tests=${8:-set,get} out rc
  out=$(timeout 900 redis-benchmark -h 127.0.0.1 -p "$port" -t "$tests" -n "$n" \
    -r 100000 -d 64 -c 50 -P "$P" --csv 2>&1)
  rc=$?
  # "SET","83333.34","0.405","0.128","0.319","0.567","3.399","3.511"
  tr -d '"' <<<"$out" | awk -F, -v s="$sys" -v c="$cfg" -v p="$P" -v r="$round" \
    '$1=="SET"||$1=="GET" {print s","c","$1","p","r","$2","$5","$7}' >>"$raw"
  if [ $rc -ne 0 ] || grep -qiE 'error|refused|reset' <<<"$out"; then
    echo "ERROR $sys P=$P round $round rc=$rc: $(head -3 <<<"$out")" >&2
    return 1
  fi
  return 0
}

# bench_cell RAW SYSTEM CONFIG OP PIPELINE COLUMN -> median of that column (6 ops/s, 7 p50,
# 8 p99) over the rounds
bench_cell() {
  awk -F, -v s="$2" -v c="$3" -v o="$4" -v p="$5" '$1==s && $2==c && $3==o && $4==p' "$1" |
    cut -d, -f"$6" | grep . | median
}
