#!/usr/bin/env bash
# Runs secprov's benchmarks and writes BENCHMARKS.md with the numbers, the
# ratios asked for (up vs the hand-started floor, prod+test vs one) and the
# exact commands. Needs the toolchain (make tools).
set -euo pipefail
cd "$(dirname "$0")/.."
out=BENCHMARKS.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # name, package, bench regexp, benchtime
  local cmd="go test -run '^\$' -bench '$3' -benchtime $4 -count ${COUNT:-1} $2"
  echo "== $1: $cmd" >&2
  echo "$cmd" >"$tmp/$1.cmd"
  eval "$cmd" | tee "$tmp/$1.out" | grep -E '^(Benchmark|ok|FAIL)' >&2
}

run review ./blueprints/review 'Review1000$|LoadAndReview1000$' 10x
run up ./provision 'UpVsFloor$|UpOne$|UpProdTest$' 3x
run verify ./hardening/verify 'Suite$' 5x

metric() { # file, benchmark name, unit → mean of that metric over -count runs
  awk -v b="$2" -v u="$3" '$1 ~ "^"b"(-[0-9]+)?$" { for (i=3;i<NF;i++) if ($(i+1)==u) { s+=$i; n++ } } END { if (n) printf "%.3f", s/n; else printf "n/a" }' "$1"
}

review_ms=$(awk '$1 ~ /^BenchmarkReview1000/ {s+=$3; n++} END {if (n) printf "%.1f", s/n/1e6}' "$tmp/review.out")
load_ms=$(awk '$1 ~ /^BenchmarkLoadAndReview1000/ {s+=$3; n++} END {if (n) printf "%.1f", s/n/1e6}' "$tmp/review.out")
up_s=$(metric "$tmp/up.out" BenchmarkUpVsFloor up-s/op)
floor_s=$(metric "$tmp/up.out" BenchmarkUpVsFloor floor-s/op)
ratio=$(metric "$tmp/up.out" BenchmarkUpVsFloor up/floor)
one_s=$(metric "$tmp/up.out" BenchmarkUpOne s/up)
both_s=$(metric "$tmp/up.out" BenchmarkUpProdTest s/up)
both_ratio=$(awk -v a="$both_s" -v b="$one_s" 'BEGIN { if (b+0 > 0) printf "%.2f", a/b; else print "n/a" }')
suite_s=$(awk '$1 ~ /^BenchmarkSuite/ {s+=$3; n++} END {if (n) printf "%.3f", s/n/1e9; else print "n/a"}' "$tmp/verify.out")

{
  echo "# Benchmarks"
  echo
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -srm)), load average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "Reproduce with \`make bench\` (this file is written by \`scripts/bench.sh\`)."
  echo
  echo "| what | result | target |"
  echo "|---|---|---|"
  echo "| review of 1,000 generated blueprints (in memory) | ${review_ms} ms | well under 1 s |"
  echo "| load + review of 1,000 blueprints | ${load_ms} ms | |"
  echo "| \`up\` of one local cluster, warm toolchain | ${up_s} s | |"
  echo "| floor: same etcd + kube-apiserver started by hand to /readyz | ${floor_s} s | |"
  echo "| **up / floor** (paired in each iteration) | **${ratio}×** | ≤ 1.5× |"
  echo "| \`up\` of prod + test together vs one cluster | ${both_s} s vs ${one_s} s = **${both_ratio}×** | concurrent (≪ 2×) |"
  echo "| full verify suite on one local cluster | ${suite_s} s | < 2 s |"
  echo
  echo "The up/floor ratio is measured in one benchmark that alternates the two in every"
  echo "iteration, so both see the same machine load. \`up\` includes the Pulumi engine,"
  echo "PKI generation, config rendering, etcd, the API server, controller manager,"
  echo "scheduler and the in-cluster bootstrap objects; the floor only starts etcd and"
  echo "the API server with the same flags and an existing PKI."
  echo
  for f in review up verify; do
    echo "## $f"
    echo
    echo '```'
    echo "\$ $(cat "$tmp/$f.cmd")"
    grep -E '^(goos|goarch|cpu|Benchmark)' "$tmp/$f.out" || true
    echo '```'
    echo
  done
  if [ -f BENCHMARKS.extra.md ]; then cat BENCHMARKS.extra.md; fi
} >"$out"
echo "wrote $out" >&2
