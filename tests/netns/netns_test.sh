#!/usr/bin/env bash
#
# tests/netns/netns_test.sh
# ~~~~~~~~~~~~~~~~~~~~~~~~~
# The multi-host test: four nodes of one graph, each in a network namespace of its own, in a ring of point-to-point
# links with a delay and random loss on every link, each way (20 ms and 1% by default). Every node sends numbered
# messages to both its neighbors and must receive every message of both, whole and in order. Then one link is cut (a
# black hole: every packet on it is dropped, both ways) while the nodes send a second batch: the two nodes on that
# link must report the connection disconnected with timed_out (keepalive) within a bounded time, and the other
# three links must deliver the second batch complete and in order.
#
# Records go along: every node adds a batch of records at its start and another while the link is cut, and every node
# must come to hold all of them (the same count and digest) within a bound, across the path that remains. Then the
# link opposite the cut one is cut too, which splits the ring in two halves; every node adds a third batch, each half
# must agree on its own records and not see the other's, and the first cut link is restored: the graph's repair
# dials the lost neighbor again, and the records of each half must reach the other through the synchronisation of
# that new connection (and flooding on from there), so that every node ends with every record. Last, the second cut
# link is restored too (the repair makes the ring whole again), one node is cut off entirely (both its links), each
# side adds a fourth batch, and once its links are back the repair must reconnect it on both and every node must hold
# every record again.
#
# Every node publishes its presence, with the one address it listens on; the graph's automatic repair (not the
# node program) re-forms every lost link, dialling that address. It is reachable from both ring neighbors: directly
# from the one on its link, through a host route from the other.
#
# Usage: netns_test.sh NETNS_NODE [NETNS_LINK]      (as root; Meson passes both programs)
#
# The links are veth pairs with `tc qdisc ... netem delay D loss P%` on both ends where the kernel has netem, else
# pairs of TUN devices joined by NETNS_LINK, a userspace emulator that applies the same delay and loss. The
# namespaces, links and addresses (10.231.K.0/30 for link K) exist only inside the namespaces the test makes; the
# test removes them on exit, whatever happens.
#
# Environment (all optional):
#   PEERGRAPH_NETNS_LINKS=auto|netem|userspace   how links are made (auto: netem when it works, else userspace)
#   PEERGRAPH_NETNS_COUNT=300                    messages per neighbor per batch
#   PEERGRAPH_NETNS_INTERVAL_MS=10               time between two messages to one neighbor
#   PEERGRAPH_NETNS_KEEPALIVE_MS=300             graph_properties::keepalive_interval of every node
#   PEERGRAPH_NETNS_DELAY_MS=20, PEERGRAPH_NETNS_LOSS_PERCENT=1
#   PEERGRAPH_NETNS_SEED                         the emulator's random seed (default: a new one each run)
#   PEERGRAPH_NETNS_RECORDS=20                   records each node adds per batch (0: no records, no phases 3 and 4)
#   PEERGRAPH_NETNS_RECORD_INTERVAL_MS=50        time between two records of a node
#   PEERGRAPH_NETNS_RECORD_BOUND_S=10            time the records of a batch may take to reach every node, after
#                                                the batch's last add (after a restore: after the reconnection)
#   PEERGRAPH_NETNS_REPAIR_BACKOFF_MAX_MS=1000   graph_properties::repair_backoff_max of every node
#   PEERGRAPH_NETNS_KEEP_LOGS=DIR                copy the logs of the run to DIR
#
# Exit status: 0 passed, 1 failed, 77 skipped (Meson's code; printed as "skipped: <reason>") when it cannot run
# here: not root, no `ip`, no network namespaces, or neither netem nor a TUN device for the emulator.
#
set -u

node_program=${1:-}
link_program=${2:-}

count=${PEERGRAPH_NETNS_COUNT:-300}
interval_ms=${PEERGRAPH_NETNS_INTERVAL_MS:-10}
keepalive_ms=${PEERGRAPH_NETNS_KEEPALIVE_MS:-300}
delay_ms=${PEERGRAPH_NETNS_DELAY_MS:-20}
loss_percent=${PEERGRAPH_NETNS_LOSS_PERCENT:-1}
links_mode=${PEERGRAPH_NETNS_LINKS:-auto}
seed=${PEERGRAPH_NETNS_SEED:-$RANDOM$RANDOM}
records=${PEERGRAPH_NETNS_RECORDS:-20}
record_interval_ms=${PEERGRAPH_NETNS_RECORD_INTERVAL_MS:-50}
record_bound_s=${PEERGRAPH_NETNS_RECORD_BOUND_S:-10}
repair_backoff_max_ms=${PEERGRAPH_NETNS_REPAIR_BACKOFF_MAX_MS:-1000}
message_bytes=2000
nodes=4
port=7000
cut_link=1 # between node1 and node2
# With link 1 cut, cutting the opposite link too (3: node3 to node0) splits the ring into node0 node1 | node2 node3.
split_link=$(((cut_link + nodes / 2) % nodes))
# Cut off entirely in phase 4: both its links, (isolated - 1) and isolated.
isolated=0
# graph_properties::connect_timeout of every node: the repair's attempt at a lost neighbor behind a cut gives up after
# this long, and the next attempt comes after at most repair_backoff_max, so that a node connects soon after the link
# comes back (TCP alone would wait for its next SYN, seconds later).
connect_timeout_ms=2000
retry_ms=200 # between the node program's own attempts at its --connect address, at its start only
# The cut must be reported within three keepalive intervals of the last packet heard (ping after a quiet interval,
# give up after a second one, checked on a timer of that period), plus this much for scheduling: the suite runs two
# tests at once on two cores, and four nodes and the link emulator share them here. Without the keepalive, TCP would
# take minutes to give up, far beyond the bound.
detection_slack_ms=1500

started_ns=$(date +%s%N)

say() { printf '%s\n' "$*"; }
skip() {
  say "skipped: $*"
  exit 77
}
die() {
  say "FAIL: $*"
  exit 1
}

[[ -n $node_program && -x $node_program ]] || die "usage: netns_test.sh NETNS_NODE [NETNS_LINK] (no node program)"
for value in "$count" "$interval_ms" "$keepalive_ms" "$delay_ms" "$loss_percent" "$records" "$record_interval_ms" \
  "$record_bound_s" "$repair_backoff_max_ms"; do
  [[ $value =~ ^[0-9]+$ ]] || die "the PEERGRAPH_NETNS_* settings are whole numbers, not '$value'"
done
((count > 0 && keepalive_ms > 0 && repair_backoff_max_ms > 0)) ||
  die "PEERGRAPH_NETNS_COUNT, PEERGRAPH_NETNS_KEEPALIVE_MS and PEERGRAPH_NETNS_REPAIR_BACKOFF_MAX_MS must be positive"

[[ $(id -u) == 0 ]] || skip "needs root to create network namespaces"
command -v ip >/dev/null 2>&1 || skip "no 'ip' command (iproute2)"

# Everything made from here on is undone by cleanup, on any exit.
workdir=$(mktemp -d "${TMPDIR:-/tmp}/peergraph-netns.XXXXXX") || die "mktemp failed"
namespaces=()
pids=() # the processes this script started and has not reaped yet
# reap PID: waits up to 5 s for PID to exit (then kills it), collects its status into reaped_status, forgets it.
reap() {
  local pid=$1 i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  reaped_status=$?
  local rest=() p
  for p in "${pids[@]}"; do
    [[ $p == "$pid" ]] || rest+=("$p")
  done
  pids=("${rest[@]}")
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    reap "$pid"
  done
  local name
  for name in "${namespaces[@]}"; do
    ip netns del "$name" 2>/dev/null
  done
  if [[ -n ${PEERGRAPH_NETNS_KEEP_LOGS:-} ]]; then
    mkdir -p "$PEERGRAPH_NETNS_KEEP_LOGS" && cp "$workdir"/*.log "$PEERGRAPH_NETNS_KEEP_LOGS"/ 2>/dev/null
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Unique names: two runs at once (two build directories) never share a namespace.
ns=()
for ((i = 0; i < nodes; i++)); do
  ns[i]="pgnet$$-$i"
  if ! error=$(ip netns add "${ns[i]}" 2>&1); then
    skip "cannot create network namespaces (ip netns add: ${error:-failed})"
  fi
  namespaces+=("${ns[i]}")
  ip -n "${ns[i]}" link set lo up || die "cannot bring up lo in ${ns[i]}"
done

# Can this kernel run netem? Tried on a veth pair made for the purpose inside the first namespace.
netem_works() {
  command -v tc >/dev/null 2>&1 || return 1
  ip -n "${ns[0]}" link add pgprobe0 type veth peer name pgprobe1 >/dev/null 2>&1 || return 1
  local works=1
  tc -n "${ns[0]}" qdisc add dev pgprobe0 root netem delay 1ms loss 1% >/dev/null 2>&1 && works=0
  ip -n "${ns[0]}" link del pgprobe0 >/dev/null 2>&1
  return $works
}
userspace_works() { [[ -n $link_program && -x $link_program && -c /dev/net/tun ]]; }

case $links_mode in
auto)
  if netem_works; then
    links_mode=netem
  elif userspace_works; then
    links_mode=userspace
  else
    skip "no tc netem (kernel without sch_netem) and no TUN device for the userspace link emulator"
  fi
  ;;
netem) netem_works || skip "tc netem is not available (kernel without sch_netem, or no 'tc')" ;;
userspace) userspace_works || skip "the userspace link emulator needs NETNS_LINK and /dev/net/tun" ;;
*) die "PEERGRAPH_NETNS_LINKS is auto, netem or userspace, not '$links_mode'" ;;
esac

# node_a K, node_b K: the nodes at the two ends of link K.
node_a() { echo "$1"; }
node_b() { echo $((($1 + 1) % nodes)); }

# Waits until "$@" succeeds, checking every 0.1 s for at most $1 seconds; fails early when a node has died.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local i
  for ((i = 0; i < seconds * 10; i++)); do
    "$@" && return 0
    for pid in "${node_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { say "a node exited early, while waiting for $what"; return 1; }
    done
    sleep 0.1
  done
  say "timed out after ${seconds}s waiting for $what"
  return 1
}

dump_logs() {
  local file
  for file in "$workdir"/*.log; do
    say "---- $(basename "$file") (last 40 lines)"
    tail -n 40 "$file"
  done
}

node_pids=()
link_pid=

# The ring: link K joins node K (10.231.K.1) and node K+1 (10.231.K.2); the device is pglK at both ends.
if [[ $links_mode == userspace ]]; then
  specs=()
  for ((k = 0; k < nodes; k++)); do
    specs+=(--link "${ns[$(node_a "$k")]}:pgl$k:${ns[$(node_b "$k")]}:pgl$k")
  done
  # The control pipe takes `cut K` and `restore K`; the script holds it open both ways, so that writing to it never
  # blocks, even if the emulator is gone.
  mkfifo "$workdir/link.control" || die "mkfifo failed"
  exec {link_control_fd}<>"$workdir/link.control"
  "$link_program" --delay-ms "$delay_ms" --loss-percent "$loss_percent" --seed "$seed" --cut-link "$cut_link" \
    --control "$workdir/link.control" "${specs[@]}" >"$workdir/link.log" 2>&1 &
  link_pid=$!
  pids+=("$link_pid")
  for ((i = 0; i < 100; i++)); do
    grep -q '^ready' "$workdir/link.log" && break
    kill -0 "$link_pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q '^ready' "$workdir/link.log" || { cat "$workdir/link.log"; die "the link emulator did not start"; }
fi
for ((k = 0; k < nodes; k++)); do
  a=${ns[$(node_a "$k")]}
  b=${ns[$(node_b "$k")]}
  if [[ $links_mode == netem ]]; then
    ip -n "$a" link add "pgl$k" type veth peer name "pgl$k" netns "$b" || die "cannot create veth pair pgl$k"
  fi
  ip -n "$a" addr add "10.231.$k.1/30" dev "pgl$k" || die "cannot address pgl$k in $a"
  ip -n "$b" addr add "10.231.$k.2/30" dev "pgl$k" || die "cannot address pgl$k in $b"
  ip -n "$a" link set "pgl$k" up || die "cannot bring up pgl$k in $a"
  ip -n "$b" link set "pgl$k" up || die "cannot bring up pgl$k in $b"
  if [[ $links_mode == netem ]]; then
    for side in "$a" "$b"; do
      tc -n "$side" qdisc add dev "pgl$k" root netem delay "${delay_ms}ms" loss "${loss_percent}%" ||
        die "cannot add netem to pgl$k in $side"
    done
  fi
done
# Node I listens on its end of link I-1 (below), and publishes that address in its presence record. Its predecessor
# reaches it on that link; its successor, node I+1, through a host route over link I. So the repair can re-form a
# lost link from either end. No node routes to the node opposite it on the ring: the repair's attempts at it fail at
# once (no route), as attempts at a node without a link would.
for ((k = 0; k < nodes; k++)); do
  ip -n "${ns[$(node_b "$k")]}" route add "10.231.$(((k + nodes - 1) % nodes)).2/32" via "10.231.$k.1" dev "pgl$k" ||
    die "cannot add a route to node$k's listen address in ${ns[$(node_b "$k")]}"
done

if [[ $links_mode == netem ]]; then
  say "links: veth pairs with tc netem delay ${delay_ms}ms loss ${loss_percent}% on both ends"
else
  say "links: TUN pairs joined by netns_link, delay ${delay_ms}ms loss ${loss_percent}% each way (seed $seed;" \
    "this kernel has no netem)"
fi
say "ring of $nodes nodes, $count messages of 16..$message_bytes bytes per neighbor per batch, one every" \
  "${interval_ms}ms; keepalive ${keepalive_ms}ms"
record_args=()
if ((records > 0)); then
  say "records: $records per node per batch, one every ${record_interval_ms}ms"
  record_args=(--records "$records" --record-interval-ms "$record_interval_ms")
fi
say "repair: every node publishes its presence; the graph's automatic repair dials lost neighbors (connect timeout" \
  "${connect_timeout_ms}ms, backoff up to ${repair_backoff_max_ms}ms)"

# Node I listens where its predecessor's link ends and connects to its successor.
for ((i = 0; i < nodes; i++)); do
  previous=$(((i + nodes - 1) % nodes))
  ip netns exec "${ns[i]}" "$node_program" --graph netns-ring --peer "node$i" \
    --listen "10.231.$previous.2:$port" --connect "10.231.$i.2:$port" \
    --send-count "$count" --interval-ms "$interval_ms" --keepalive-ms "$keepalive_ms" \
    --message-bytes "$message_bytes" --duration-s 100 --connect-attempts 50 --retry-ms "$retry_ms" \
    --connect-timeout-ms "$connect_timeout_ms" --repair-backoff-max-ms "$repair_backoff_max_ms" \
    --expect-neighbors 2 "${record_args[@]}" \
    >"$workdir/node$i.log" 2>"$workdir/node$i.err.log" &
  node_pids[i]=$!
  pids+=("$!")
done

has_milestone() { grep -q "^milestone .* node=node$1 neighbor=node$2 received=$3 in_order=yes" "$workdir/node$1.log"; }
# all_milestones RECEIVED [SKIP_LINK]: every node has RECEIVED in order from both neighbors, except over SKIP_LINK.
all_milestones() {
  local received=$1 skip=${2:--1} k
  for ((k = 0; k < nodes; k++)); do
    ((k == skip)) && continue
    has_milestone "$(node_a "$k")" "$(node_b "$k")" "$received" || return 1
    has_milestone "$(node_b "$k")" "$(node_a "$k")" "$received" || return 1
  done
}
has_disconnect() { grep -q "^event .* node=node$1 status=disconnected .* neighbor=node$2 " "$workdir/node$1.log"; }
# neighbors_of NODE: the neighbors NODE has open connections with, by its connection events, sorted ("node1 node3").
neighbors_of() {
  awk '$1 == "event" && $6 == "kind=neighbor" {
         if ($4 == "status=connected") open[$5] = substr($7, 10)
         else if ($4 == "status=disconnected") delete open[$5]
       }
       END { for (c in open) print open[c] }' "$workdir/node$1.log" | sort | tr '\n' ' ' | sed 's/ $//'
}
# ring_whole: every node has exactly its two ring neighbors.
ring_whole() {
  local i
  for ((i = 0; i < nodes; i++)); do
    [[ $(neighbors_of "$i") == "$(printf '%s\n' "node$(((i + nodes - 1) % nodes))" "node$(((i + 1) % nodes))" |
      sort | tr '\n' ' ' | sed 's/ $//')" ]] || return 1
  done
}
# required_line NODE LOST AFTER: NODE's first connection_required line about LOST later than AFTER (empty: none).
required_line() {
  awk -v after="$3" -v lost="lost=node$2" '$1 == "required" && $NF == lost && substr($2, 3) + 0 > after + 0 {
    print; exit }' "$workdir/node$1.log"
}

all_nodes=()
for ((i = 0; i < nodes; i++)); do
  all_nodes+=("$i")
done
# The records: each node's `record` and `synchronized` lines end with held=H digest=D, what it held then.
# record_state I: "HELD DIGEST" after node I's last record event ("0 -" before the first).
record_state() {
  awk '$1 == "record" || $1 == "synchronized" {
         held = "-"; digest = "-"
         for (i = 2; i <= NF; i++) {
           if ($i ~ /^held=/) held = substr($i, 6)
           else if ($i ~ /^digest=/) digest = substr($i, 8)
         }
         state = held " " digest
       }
       END { print (state == "" ? "0 -" : state) }' "$workdir/node$1.log"
}
# records_agree HELD NODE...: each of the nodes holds HELD records, all with the same digest (then agreed_digest).
records_agree() {
  local want=$1 digest='' i held d
  shift
  for i in "$@"; do
    read -r held d <<<"$(record_state "$i")"
    [[ $held == "$want" && (-z $digest || $d == "$digest") ]] || return 1
    digest=$d
  done
  agreed_digest=$digest
}
# record_diff NODE...: what the nodes hold, and which records (creator#counter) added by any of them each one lacks.
record_diff() {
  local i held d files=()
  for i in "$@"; do
    read -r held d <<<"$(record_state "$i")"
    say "  node$i holds $held records, digest $d"
    files+=("$workdir/node$i.log")
  done
  awk '$1 == "added" { all[substr($3, 6) "#" substr($5, 9)] = 1 }
       $1 == "record" && $4 == "change=added" { has[FILENAME, substr($6, 9) "#" substr($7, 9)] = 1 }
       END {
         for (f = 1; f < ARGC; f++) {
           n = 0; missing = ""
           for (key in all)
             if (!((ARGV[f], key) in has) && ++n <= 10) missing = missing " " key
           name = ARGV[f]; sub(/.*\//, "", name); sub(/\.log$/, "", name)
           if (n > 0) printf "  %s lacks %d of the records added:%s%s\n", name, n, missing, (n > 10 ? " ..." : "")
         }
       }' "${files[@]}"
}
# ms_between T0 T1: milliseconds from T0 to T1 (seconds since the epoch, with fractions).
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }'; }
# first_t NODE REGEX AFTER: the time of NODE's first line that matches REGEX with t= later than AFTER (empty: none).
first_t() {
  awk -v after="$3" -v pattern="$2" '$0 ~ pattern && $2 ~ /^t=/ && substr($2, 3) + 0 > after + 0 {
    print substr($2, 3); exit }' "$workdir/node$1.log"
}
# converged_t HELD AFTER NODE...: when the last of the nodes came to hold HELD records (its first record event after
# AFTER that says so); 0 when one never did.
converged_t() {
  local held=$1 after=$2 i t latest=0
  shift 2
  for i in "$@"; do
    t=$(first_t "$i" "^(record|synchronized) .* held=$held " "$after")
    [[ -n $t ]] || {
      echo 0
      return
    }
    latest=$(awk -v a="$latest" -v b="$t" 'BEGIN { print (b + 0 > a + 0 ? b : a) }')
  done
  echo "$latest"
}
# link_control cut|restore K: cuts link K, or ends its cut; link_t is when.
link_control() {
  local what=$1 k=$2 side loss=$loss_percent before i
  if [[ $links_mode == netem ]]; then
    [[ $what == cut ]] && loss=100
    for side in "${ns[$(node_a "$k")]}" "${ns[$(node_b "$k")]}"; do
      tc -n "$side" qdisc change dev "pgl$k" root netem delay "${delay_ms}ms" loss "${loss}%" ||
        die "cannot $what pgl$k in $side"
    done
    link_t=$(date +%s.%N)
    return
  fi
  before=$(grep -c "^$what t=.* link=$k\$" "$workdir/link.log")
  printf '%s %d\n' "$what" "$k" >&"$link_control_fd"
  for ((i = 0; i < 50; i++)); do
    (($(grep -c "^$what t=.* link=$k\$" "$workdir/link.log") > before)) && break
    sleep 0.1
  done
  link_t=$(sed -n "s/^$what t=\([0-9.]*\) link=$k\$/\1/p" "$workdir/link.log" | tail -n 1)
  (($(grep -c "^$what t=.* link=$k\$" "$workdir/link.log") > before)) || die "the link emulator did not $what link $k"
}
# Seconds one batch of records takes to be added.
record_batch_seconds=$(((records * record_interval_ms + 999) / 1000))
records_ok=1

failures=0
failure_lines=()
fail() {
  say "FAIL: $*"
  failures=$((failures + 1))
  failure_lines+=("$*")
}
# The failed checks are said again after the nodes' logs, so that the end of the output names them.
finish() {
  if ((failures > 0)); then
    dump_logs
    say "FAILED: $failures check(s):"
    printf '  %s\n' "${failure_lines[@]}"
    exit 1
  fi
  exit 0
}

# Phase 1: the first batch, under delay and loss.
batch_seconds=$(((count * interval_ms + 999) / 1000))
if ! wait_until $((batch_seconds + 20)) "every node to receive $count messages from both neighbors" \
  all_milestones "$count"; then
  fail "phase 1: not every message arrived in order"
  finish
fi
phase1_ns=$(date +%s%N)
if grep -h "status=disconnected" "$workdir"/node*.log; then
  fail "phase 1: a connection ended under delay and loss alone"
fi
say "phase 1: all $((2 * nodes)) directed neighbor links delivered $count/$count messages in order" \
  "($(((phase1_ns - started_ns) / 1000000)) ms since start)"
if ((records > 0)); then
  if wait_until $((record_batch_seconds + record_bound_s)) "every node to hold the first batch of records" \
    records_agree $((nodes * records)) "${all_nodes[@]}"; then
    say "phase 1: records: every node holds all $((nodes * records)) ($records added by each), digest $agreed_digest" \
      "($(ms_between "$((started_ns / 1000000))e-3" "$(converged_t $((nodes * records)) 0 "${all_nodes[@]}")") ms" \
      "since start)"
  else
    fail "phase 1: the nodes do not hold the same $((nodes * records)) records"
    record_diff "${all_nodes[@]}"
    records_ok=0
  fi
fi

# Phase 2: cut link $cut_link, then every node sends a second batch to every neighbor.
cut_a=${ns[$(node_a "$cut_link")]}
cut_b=${ns[$(node_b "$cut_link")]}
if [[ $links_mode == netem ]]; then
  for side in "$cut_a" "$cut_b"; do
    tc -n "$side" qdisc change dev "pgl$cut_link" root netem delay "${delay_ms}ms" loss 100% ||
      die "cannot cut pgl$cut_link in $side"
  done
  cut_t=$(date +%s.%N)
else
  kill -USR1 "$link_pid"
  for ((i = 0; i < 50; i++)); do
    grep -q '^cut ' "$workdir/link.log" && break
    sleep 0.1
  done
  cut_t=$(sed -n 's/^cut t=\([0-9.]*\) .*/\1/p' "$workdir/link.log")
  [[ -n $cut_t ]] || die "the link emulator did not cut link $cut_link"
fi
say "phase 2: link $cut_link (node$(node_a "$cut_link") <-> node$(node_b "$cut_link")) cut at t=$cut_t;" \
  "second batch of $count started"
for pid in "${node_pids[@]}"; do
  kill -USR1 "$pid"
done
batches=2 # of records, one from each node's start and one on each USR1

detection_bound_ms=$((3 * keepalive_ms + detection_slack_ms))
cut_reported() {
  local a b
  a=$(node_a "$cut_link")
  b=$(node_b "$cut_link")
  has_disconnect "$a" "$b" && has_disconnect "$b" "$a"
}
wait_until $(((detection_bound_ms + 999) / 1000 + 5)) "the cut link to be reported disconnected" cut_reported ||
  fail "phase 2: the cut link was not reported disconnected at both ends"
for pair in "$(node_a "$cut_link") $(node_b "$cut_link")" "$(node_b "$cut_link") $(node_a "$cut_link")"; do
  read -r here there <<<"$pair"
  [[ -n $(required_line "$here" "$there" "$cut_t") ]] ||
    fail "phase 2: node$here reported no connection_required for the loss of node$there"
done
wait_until $((batch_seconds + 20)) "the uncut links to deliver the second batch" \
  all_milestones $((2 * count)) "$cut_link" || fail "phase 2: the uncut links did not deliver the second batch"
if ((records > 0 && records_ok)); then
  # Records made during the cut reach the far end of the cut link the other way round the ring.
  if wait_until $((record_batch_seconds + record_bound_s)) "every node to hold the records added during the cut" \
    records_agree $((2 * nodes * records)) "${all_nodes[@]}"; then
    say "phase 2: records: every node holds all $((2 * nodes * records)), $records more added by each during the" \
      "cut, over the remaining path; digest $agreed_digest" \
      "($(ms_between "$cut_t" "$(converged_t $((2 * nodes * records)) "$cut_t" "${all_nodes[@]}")") ms after the cut)"
  else
    fail "phase 2: the records added during the cut did not reach every node over the remaining path"
    record_diff "${all_nodes[@]}"
    records_ok=0
  fi
fi

# Stop every node: all write their summaries first (SIGUSR2), and only then close (SIGTERM, after phase 3), so that
# no node's summary counts another's departure as a disconnection.
for pid in "${node_pids[@]}"; do
  kill -USR2 "$pid" 2>/dev/null
done
summarized() { [[ $(cat "$workdir"/node*.log | grep -c '^result ') == "$nodes" ]]; }
wait_until 10 "every node to write its summary" summarized || fail "not every node wrote its summary"

# field NODE NEIGHBOR NAME: NAME= of NODE's summary line about NEIGHBOR (empty when missing).
field() {
  awk -v neighbor="neighbor=node$2" -v name="$3" '
    $1 == "summary" && $3 == neighbor {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) { print substr($i, length(name) + 2); exit } }
    }' "$workdir/node$1.log"
}

detections=()
for ((k = 0; k < nodes; k++)); do
  for pair in "$(node_a "$k") $(node_b "$k")" "$(node_b "$k") $(node_a "$k")"; do
    read -r receiver sender <<<"$pair"
    lines=$(grep -c "^summary .* neighbor=node$sender " "$workdir/node$receiver.log")
    if ((lines != 1)); then
      fail "node$receiver has $lines summary lines about node$sender (expected 1)"
      continue
    fi
    received=$(field "$receiver" "$sender" received)
    sent=$(field "$sender" "$receiver" sent)
    in_order=$(field "$receiver" "$sender" in_order)
    corrupt=$(field "$receiver" "$sender" corrupt)
    disconnected=$(field "$receiver" "$sender" disconnected)
    reason=$(field "$receiver" "$sender" reason)
    [[ $in_order == yes && $corrupt == 0 ]] ||
      fail "node$sender -> node$receiver: in_order=$in_order corrupt=$corrupt" \
        "(first anomaly: $(field "$receiver" "$sender" first_anomaly))"
    if ((k == cut_link)); then
      disconnect_t=$(field "$receiver" "$sender" disconnect_t)
      ((received == count)) ||
        fail "node$sender -> node$receiver (cut): received $received, expected exactly the first batch, $count"
      if [[ $disconnected == yes && $reason == timed_out ]]; then
        detection_ms=$(ms_between "$cut_t" "$disconnect_t")
        ((detection_ms > 0 && detection_ms <= detection_bound_ms)) ||
          fail "node$receiver reported the cut after $detection_ms ms (bound $detection_bound_ms ms)"
      else
        detection_ms=none
        fail "node$sender -> node$receiver (cut): disconnected=$disconnected reason=$reason (expected timed_out)"
      fi
      detections+=("node$receiver ${detection_ms}ms")
      say "  node$sender -> node$receiver (cut link): received $received/$sent sent, in order, disconnected" \
        "($reason) ${detection_ms} ms after the cut"
    else
      ((received == 2 * count && sent == 2 * count)) ||
        fail "node$sender -> node$receiver: sent $sent, received $received, expected $((2 * count)) both"
      [[ $disconnected == no ]] || fail "node$sender -> node$receiver: disconnected ($reason), expected connected"
      say "  node$sender -> node$receiver: received $received/$sent sent, in order, connected"
    fi
  done
done
for ((i = 0; i < nodes; i++)); do
  grep -q "^result node=node$i neighbors=2 ok=yes" "$workdir/node$i.log" || fail "node$i did not report ok"
done

# After a restore, the repair of a link behind it may be anywhere in its cycle of attempts: one at the lost neighbor
# under way (it gives up after the connect timeout if its SYN went into the cut), then a wait of at most
# repair_backoff_max, an attempt at the node opposite on the ring (no route: it fails at once), and another wait of at
# most repair_backoff_max before the lost neighbor may be tried again (the repair skips a node that failed within the
# current wait). So the link is back within the connect timeout and two waits, plus the handshake; the records of the
# synchronisation and the flooding from there get the usual record bound.
repair_bound_ms=$((connect_timeout_ms + 2 * repair_backoff_max_ms))
restore_bound_s=$(((repair_bound_ms + 999) / 1000 + record_bound_s))
# The link itself, at both ends: the repair bound, and a little for the handshake (a lost SYN is sent again after a
# second).
relink_bound_s=$(((repair_bound_ms + 999) / 1000 + 3))
# lost_since A B T: A reported its connection to B disconnected after T. Every check of a loss looks after the cut:
# an idle connection can also end on its own now and then (timed_out: a ping or its pong lost, and TCP's
# retransmission, at least 200 ms later, comes too late for a 300 ms keepalive), and the repair re-forms it.
lost_since() { [[ -n $(first_t "$1" "^event .* status=disconnected .* neighbor=node$2 " "$3") ]]; }
# link_origin NODE NEIGHBOR T: the origin of NODE's connected event at time T about NEIGHBOR.
link_origin() {
  awk -v t="t=$3" -v neighbor="neighbor=node$2" '$1 == "event" && $2 == t && $7 == neighbor {
    print substr($9, 8); exit }' "$workdir/node$1.log"
}
# check_relinked PHASE A B AFTER: A and B have a new connection since AFTER (a restore), opened by the repair of one of
# them and accepted by the other, within the relink bound; says who dialled. Sets relinked_t, when the later end
# reported it.
check_relinked() {
  local phase=$1 a=$2 b=$3 after=$4 ta tb oa ob
  ta=$(first_t "$a" "^event .* status=connected .* neighbor=node$b " "$after")
  tb=$(first_t "$b" "^event .* status=connected .* neighbor=node$a " "$after")
  relinked_t=
  if [[ -z $ta || -z $tb ]]; then
    fail "$phase: node$a and node$b have no new connection to each other"
    return
  fi
  oa=$(link_origin "$a" "$b" "$ta")
  ob=$(link_origin "$b" "$a" "$tb")
  if [[ $oa == repair && $ob == accepted ]]; then
    dialler_text="node$a's repair dialled node$b"
  elif [[ $ob == repair && $oa == accepted ]]; then
    dialler_text="node$b's repair dialled node$a"
  else
    fail "$phase: the new connection node$a <-> node$b is not the repair's (origin $oa at node$a, $ob at node$b)"
    dialler_text="origins $oa, $ob"
  fi
  relinked_t=$(awk -v a="$ta" -v b="$tb" 'BEGIN { print (b + 0 > a + 0 ? b : a) }')
  (($(ms_between "$after" "$relinked_t") <= relink_bound_s * 1000)) ||
    fail "$phase: node$a and node$b reconnected $(ms_between "$after" "$relinked_t") ms after the restore" \
      "(bound ${relink_bound_s}s)"
}

# Phase 3 (records): the summaries are written, so messages are over; the nodes still hold their records, report
# record events and repair lost links. Cut the link opposite the cut one: the ring splits in two halves. Every node
# adds a batch; each half must agree on its records without the other's. Then restore the first cut link: its
# connection ended in phase 2 (timed_out), and the repair of its two ends has been dialling the lost neighbor since;
# the new connection's synchronisation must bring each half the other's records, which flooding takes on to the rest
# of the half.
phase3_ok=0
if ((records > 0 && records_ok)); then
  side_a=()
  side_b=()
  for ((i = $(node_b "$split_link"); ; i = (i + 1) % nodes)); do
    side_a+=("$i")
    ((i == $(node_a "$cut_link"))) && break
  done
  for ((i = $(node_b "$cut_link"); ; i = (i + 1) % nodes)); do
    side_b+=("$i")
    ((i == $(node_a "$split_link"))) && break
  done
  link_control cut "$split_link"
  split_t=$link_t
  say "phase 3: link $split_link (node$(node_a "$split_link") <-> node$(node_b "$split_link")) cut at t=$split_t too:" \
    "the graph is split into ${side_a[*]/#/node} | ${side_b[*]/#/node}; a third batch of records started"
  for pid in "${node_pids[@]}"; do
    kill -USR1 "$pid"
  done
  batches=$((batches + 1))
  split_reported() {
    lost_since "$(node_a "$split_link")" "$(node_b "$split_link")" "$split_t" &&
      lost_since "$(node_b "$split_link")" "$(node_a "$split_link")" "$split_t"
  }
  if wait_until $(((detection_bound_ms + 999) / 1000 + 5)) "link $split_link to be reported disconnected" \
    split_reported; then
    for pair in "$(node_a "$split_link") $(node_b "$split_link")" "$(node_b "$split_link") $(node_a "$split_link")"; do
      read -r here there <<<"$pair"
      lost_t=$(first_t "$here" "^event .* status=disconnected .* neighbor=node$there " "$split_t")
      line=$(awk -v t="t=$lost_t" '$1 == "event" && $2 == t { print; exit }' "$workdir/node$here.log")
      say "  node$here lost node$there (${line##*reason=}) $(ms_between "$split_t" "$lost_t") ms after the cut"
      [[ -n $(required_line "$here" "$there" "$split_t") ]] ||
        fail "phase 3: node$here reported no connection_required for the loss of node$there"
    done
  else
    fail "phase 3: link $split_link was not reported disconnected at both ends"
  fi
  # Each half: what the whole graph held before, and its own nodes' third batch; nothing of the other half's.
  held_a=$((2 * nodes * records + ${#side_a[@]} * records))
  held_b=$((2 * nodes * records + ${#side_b[@]} * records))
  halves_agree() {
    records_agree "$held_a" "${side_a[@]}" || return 1
    digest_a=$agreed_digest
    records_agree "$held_b" "${side_b[@]}" || return 1
    digest_b=$agreed_digest
    [[ $digest_a != "$digest_b" ]]
  }
  if wait_until $((record_batch_seconds + record_bound_s)) "each half to hold its own records" halves_agree; then
    say "phase 3: split: ${side_a[*]/#/node} hold $held_a records (digest $digest_a), ${side_b[*]/#/node} hold" \
      "$held_b (digest $digest_b); none crossed"
  else
    fail "phase 3: the halves do not each hold their own records, and only those"
    record_diff "${side_a[@]}"
    record_diff "${side_b[@]}"
  fi

  link_control restore "$cut_link"
  restore_t=$link_t
  total_records=$((3 * nodes * records))
  end_a=$(node_a "$cut_link")
  end_b=$(node_b "$cut_link")
  say "phase 3: link $cut_link (node$end_a <-> node$end_b) restored at t=$restore_t"
  if wait_until "$restore_bound_s" "every node to hold all $total_records records after the restore" \
    records_agree "$total_records" "${all_nodes[@]}"; then
    say "phase 3: every node holds all $total_records records, digest $agreed_digest," \
      "$(ms_between "$restore_t" "$(converged_t "$total_records" "$restore_t" "${all_nodes[@]}")") ms after the" \
      "restore (bound ${restore_bound_s}s)"
    final_digest=$agreed_digest
    phase3_ok=1
  else
    fail "phase 3: the nodes did not converge after link $cut_link was restored"
    record_diff "${all_nodes[@]}"
  fi
  # The new connection, and its synchronisation, at both ends; the records that came through it. The records can
  # all be in place (through one end's half of the exchange) before the other end logs its synchronisation: wait
  # for both, within the same bound.
  both_synchronised() {
    [[ -n $(first_t "$end_a" "^synchronized .* neighbor=node$end_b " "$restore_t") &&
      -n $(first_t "$end_b" "^synchronized .* neighbor=node$end_a " "$restore_t") ]]
  }
  wait_until "$restore_bound_s" "both ends of link $cut_link to report their synchronisation" both_synchronised ||
    true # the checks below say which end did not
  check_relinked "phase 3" "$end_a" "$end_b" "$restore_t"
  [[ -n $relinked_t ]] && say "phase 3: link $cut_link re-formed: $dialler_text" \
    "$(ms_between "$restore_t" "$relinked_t") ms after the restore (bound ${relink_bound_s}s)"
  for pair in "$end_a $end_b ${#side_b[@]}" "$end_b $end_a ${#side_a[@]}"; do
    read -r here there far_nodes <<<"$pair"
    connected_t=$(first_t "$here" "^event .* status=connected .* neighbor=node$there( |\$)" "$restore_t")
    synced_t=$(first_t "$here" "^synchronized .* neighbor=node$there " "$restore_t")
    if [[ -z $connected_t || -z $synced_t ]]; then
      fail "node$here: no new connection to node$there, or no synchronisation of it, after the restore"
      continue
    fi
    connection=$(awk -v t="t=$connected_t" '$1 == "event" && $2 == t { print substr($5, 12); exit }' \
      "$workdir/node$here.log")
    # Between the connection and the end of its synchronisation, only the synchronisation brings records here.
    through_sync=$(awk -v a="$connected_t" -v b="$synced_t" '$1 == "record" && $4 == "change=added" {
        t = substr($2, 3) + 0; if (t >= a + 0 && t <= b + 0) n++ } END { print n + 0 }' "$workdir/node$here.log")
    ((through_sync == far_nodes * records)) ||
      fail "node$here took $through_sync records from node$there's synchronisation, expected $((far_nodes * records))"
    say "  node$here <-> node$there: new connection $connection $(ms_between "$restore_t" "$connected_t") ms" \
      "after the restore (the old one ended $(field "$here" "$there" reason) in phase 2), synchronised after" \
      "$(ms_between "$restore_t" "$synced_t") ms, bringing $through_sync records of the other half"
  done
fi

# Phase 4 (records): a node cut off entirely and brought back by the repair. First link $split_link, cut since phase
# 3, is restored: the repair of its two ends must make the ring whole again. Then both links of node$isolated are
# cut: its two neighbors, and node$isolated itself, must report each loss (timed_out, by keepalive) and
# connection_required, and every node adds a fourth batch, so that node$isolated holds its own and the rest of the
# graph theirs. Then both links are restored, and the repair (nothing else dials any more) must re-form both, so that
# every node holds every record within the repair bound after the restore, and the ring is whole.
if ((records > 0 && phase3_ok)); then
  link_control restore "$split_link"
  rering_t=$link_t
  say "phase 4: link $split_link (node$(node_a "$split_link") <-> node$(node_b "$split_link")) restored at" \
    "t=$rering_t"
  if wait_until "$relink_bound_s" "the repair to make the ring whole again" ring_whole; then
    check_relinked "phase 4" "$(node_a "$split_link")" "$(node_b "$split_link")" "$rering_t"
    [[ -n $relinked_t ]] && say "phase 4: the ring is whole again: $dialler_text" \
      "$(ms_between "$rering_t" "$relinked_t") ms after the restore (bound ${relink_bound_s}s)"
  else
    fail "phase 4: the ring is not whole again after link $split_link was restored"
    for i in "${all_nodes[@]}"; do
      say "  node$i's neighbors: $(neighbors_of "$i")"
    done
  fi

  # The links of the isolated node, and the neighbor at the other end of each.
  isolated_links=("$(((isolated + nodes - 1) % nodes))" "$isolated")
  isolated_neighbors=("$(node_a "${isolated_links[0]}")" "$(node_b "${isolated_links[1]}")")
  rest=()
  for i in "${all_nodes[@]}"; do
    ((i == isolated)) || rest+=("$i")
  done
  isolation_t=()
  for k in "${isolated_links[@]}"; do
    link_control cut "$k"
    isolation_t+=("$link_t")
  done
  say "phase 4: node$isolated cut off: links ${isolated_links[*]} cut at t=${isolation_t[0]} and" \
    "t=${isolation_t[1]}; a fourth batch of records started"
  for pid in "${node_pids[@]}"; do
    kill -USR1 "$pid"
  done
  batches=$((batches + 1))
  final_digest=
  isolation_reported() {
    local j
    for j in 0 1; do
      lost_since "${isolated_neighbors[j]}" "$isolated" "${isolation_t[j]}" || return 1
      lost_since "$isolated" "${isolated_neighbors[j]}" "${isolation_t[j]}" || return 1
    done
  }
  wait_until $(((detection_bound_ms + 999) / 1000 + 5)) "the links of node$isolated to be reported lost" \
    isolation_reported || true # the checks below say which
  for j in 0 1; do
    for pair in "${isolated_neighbors[j]} $isolated" "$isolated ${isolated_neighbors[j]}"; do
      read -r here there <<<"$pair"
      lost_t=$(first_t "$here" "^event .* status=disconnected .* neighbor=node$there " "${isolation_t[j]}")
      if [[ -z $lost_t ]]; then
        fail "phase 4: node$here did not report its connection to node$there lost"
        continue
      fi
      line=$(awk -v t="t=$lost_t" '$1 == "event" && $2 == t { print; exit }' "$workdir/node$here.log")
      lost_ms=$(ms_between "${isolation_t[j]}" "$lost_t")
      [[ ${line##*reason=} == timed_out ]] ||
        fail "phase 4: node$here lost node$there with ${line##*reason=}, expected timed_out"
      ((lost_ms <= detection_bound_ms)) ||
        fail "phase 4: node$here reported the loss of node$there after $lost_ms ms (bound $detection_bound_ms ms)"
      required=$(required_line "$here" "$there" "${isolation_t[j]}")
      if [[ -z $required ]]; then
        fail "phase 4: node$here reported no connection_required for the loss of node$there"
        required="none"
      else
        required="connection_required with $(awk '{ print substr($4, 11) }' <<<"$required") neighbors left"
      fi
      say "  node$here lost node$there (${line##*reason=}) $lost_ms ms after the cut; $required"
    done
  done
  held_isolated=$((3 * nodes * records + records))
  held_rest=$((3 * nodes * records + ${#rest[@]} * records))
  sides_agree() {
    records_agree "$held_isolated" "$isolated" || return 1
    digest_a=$agreed_digest
    records_agree "$held_rest" "${rest[@]}" || return 1
    digest_b=$agreed_digest
    [[ $digest_a != "$digest_b" ]]
  }
  if wait_until $((record_batch_seconds + record_bound_s)) "each side of the cut to hold its own records" \
    sides_agree; then
    say "phase 4: cut off: node$isolated holds $held_isolated records (digest $digest_a), ${rest[*]/#/node} hold" \
      "$held_rest (digest $digest_b); none crossed"
  else
    fail "phase 4: node$isolated and the rest of the graph do not each hold their own records, and only those"
    record_diff "$isolated"
    record_diff "${rest[@]}"
  fi

  heal_t=()
  for k in "${isolated_links[@]}"; do
    link_control restore "$k"
    heal_t+=("$link_t")
  done
  total_records=$((4 * nodes * records))
  say "phase 4: links ${isolated_links[*]} restored at t=${heal_t[0]} and t=${heal_t[1]}"
  if wait_until "$restore_bound_s" "every node to hold all $total_records records after the restore" \
    records_agree "$total_records" "${all_nodes[@]}"; then
    say "phase 4: every node holds all $total_records records, digest $agreed_digest," \
      "$(ms_between "${heal_t[0]}" "$(converged_t "$total_records" "${heal_t[0]}" "${all_nodes[@]}")") ms after" \
      "the first restore (bound ${restore_bound_s}s after the second)"
    final_digest=$agreed_digest
  else
    fail "phase 4: the nodes did not converge after node$isolated's links were restored"
    record_diff "${all_nodes[@]}"
  fi
  if wait_until "$relink_bound_s" "the repair to reconnect node$isolated on both links" ring_whole; then
    for j in 0 1; do
      check_relinked "phase 4" "$isolated" "${isolated_neighbors[j]}" "${heal_t[j]}"
      [[ -n $relinked_t ]] && say "  node$isolated <-> node${isolated_neighbors[j]}: $dialler_text" \
        "$(ms_between "${heal_t[j]}" "$relinked_t") ms after link ${isolated_links[j]} was restored"
    done
    say "phase 4: the ring is whole again (bound ${relink_bound_s}s)"
  else
    fail "phase 4: node$isolated was not reconnected on both links after the restore"
    for i in "${all_nodes[@]}"; do
      say "  node$i's neighbors: $(neighbors_of "$i")"
    done
  fi
fi

stop_t=$(date +%s.%N)
for pid in "${node_pids[@]}"; do
  kill -TERM "$pid" 2>/dev/null
done
for ((i = 0; i < nodes; i++)); do
  reap "${node_pids[i]}"
  ((reaped_status == 0)) || fail "node$i exited with status $reaped_status"
done
node_pids=()
if ((records > 0)); then
  # record_summary NODE NAME: NAME= of NODE's record summary (empty when missing).
  record_summary() {
    awk -v name="$2" '$1 == "record_summary" {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) { print kv[2]; exit } } }' \
      "$workdir/node$1.log"
  }
  expected_added=$((batches * records))
  for i in "${all_nodes[@]}"; do
    held=$(record_summary "$i" held)
    digest=$(record_summary "$i" digest)
    added=$(record_summary "$i" added)
    [[ -n $held ]] || {
      fail "node$i wrote no record summary"
      continue
    }
    problems=$(($(record_summary "$i" add_failed) + $(record_summary "$i" malformed)))
    ((added == expected_added && problems == 0)) ||
      fail "node$i: added $added records (expected $expected_added), $problems failed or malformed"
    [[ -z ${final_digest:-} || ($held == "$total_records" && $digest == "$final_digest") ]] ||
      fail "node$i ended with $held records, digest $digest (expected $total_records, $final_digest)"
  done
fi

# What the links did: the emulator's own counts, or netem's drop counters.
if [[ $links_mode == userspace ]]; then
  kill -TERM "$link_pid"
  reap "$link_pid"
  awk '$1 == "stats" {
         split($4, p, "="); split($5, d, "="); split($8, f, "="); split($7, c, "=")
         packets += p[2] - c[2]; dropped += d[2]; forwarded += f[2]
       }
       END { printf "links: %d packets offered, %d dropped at random (%.2f%%), %d forwarded after the delay\n",
                    packets, dropped, packets ? 100 * dropped / packets : 0, forwarded }' "$workdir/link.log"
else
  for ((k = 0; k < nodes; k++)); do
    for side in "${ns[$(node_a "$k")]}" "${ns[$(node_b "$k")]}"; do
      counters=$(tc -s -n "$side" qdisc show dev "pgl$k" | grep -o 'Sent [0-9]* bytes [0-9]* pkt (dropped [0-9]*')
      say "  netem on pgl$k in $side: $counters)"
    done
  done
fi

finished_ns=$(date +%s%N)
say "messages: $((2 * nodes * count)) in the first batch, $((2 * nodes * count)) sent in the second;" \
  "cut detected: ${detections[*]}; bound $detection_bound_ms ms"
if ((records > 0)); then
  ends=()
  for i in "${all_nodes[@]}"; do
    ends+=("node$i $(record_summary "$i" held) records, digest $(record_summary "$i" digest)")
  done
  if [[ $(printf '%s\n' "${ends[@]#node* }" | sort -u | wc -l) == 1 ]]; then
    say "records: $((expected_added * nodes)) added, $records per node per batch; every node ended with" \
      "${ends[0]#node* }"
  else
    ended=$(printf '%s; ' "${ends[@]}")
    say "records: $((expected_added * nodes)) added, $records per node per batch; the nodes ended with:" \
      "${ended%; }"
  fi
fi
# Every loss and every repair of the run until the nodes were stopped: the cuts', and those of any idle connection
# that timed out on its own.
before_stop() {
  cat "$workdir"/node*.log | awk -v stop="$stop_t" -v pattern="$1" '$0 ~ pattern && substr($2, 3) + 0 < stop + 0' |
    wc -l
}
say "repair: $(before_stop '^required ') neighbor losses reported with connection_required," \
  "$(before_stop '^event .* status=connected .* origin=repair') connections opened by the repair" \
  "($(before_stop '^event .* status=failed .* origin=repair') of its attempts failed)"
say "total time: $(((finished_ns - started_ns) / 1000000)) ms"
finish
