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
message_bytes=2000
nodes=4
port=7000
cut_link=1 # between node1 and node2
# The cut must be reported within three keepalive intervals of the last packet heard (ping after a quiet interval,
# give up after a second one, checked on a timer of that period), plus this much for scheduling.
detection_slack_ms=700

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
for value in "$count" "$interval_ms" "$keepalive_ms" "$delay_ms" "$loss_percent"; do
  [[ $value =~ ^[0-9]+$ ]] || die "the PEERGRAPH_NETNS_* settings are whole numbers, not '$value'"
done
((count > 0 && keepalive_ms > 0)) || die "PEERGRAPH_NETNS_COUNT and PEERGRAPH_NETNS_KEEPALIVE_MS must be positive"

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
  "$link_program" --delay-ms "$delay_ms" --loss-percent "$loss_percent" --seed "$seed" --cut-link "$cut_link" \
    "${specs[@]}" >"$workdir/link.log" 2>&1 &
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

if [[ $links_mode == netem ]]; then
  say "links: veth pairs with tc netem delay ${delay_ms}ms loss ${loss_percent}% on both ends"
else
  say "links: TUN pairs joined by netns_link, delay ${delay_ms}ms loss ${loss_percent}% each way (seed $seed;" \
    "this kernel has no netem)"
fi
say "ring of $nodes nodes, $count messages of 16..$message_bytes bytes per neighbor per batch, one every" \
  "${interval_ms}ms; keepalive ${keepalive_ms}ms"

# Node I listens where its predecessor's link ends and connects to its successor.
for ((i = 0; i < nodes; i++)); do
  previous=$(((i + nodes - 1) % nodes))
  ip netns exec "${ns[i]}" "$node_program" --graph netns-ring --peer "node$i" \
    --listen "10.231.$previous.2:$port" --connect "10.231.$i.2:$port" \
    --send-count "$count" --interval-ms "$interval_ms" --keepalive-ms "$keepalive_ms" \
    --message-bytes "$message_bytes" --duration-s 100 --connect-attempts 50 --retry-ms 200 --expect-neighbors 2 \
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
has_disconnect() { grep -q "^event .* node=node$1 status=disconnected .* neighbor=node$2" "$workdir/node$1.log"; }

failures=0
fail() {
  say "FAIL: $*"
  failures=$((failures + 1))
}
finish() {
  if ((failures > 0)); then
    dump_logs
    say "FAILED: $failures check(s)"
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

detection_bound_ms=$((3 * keepalive_ms + detection_slack_ms))
cut_reported() {
  local a b
  a=$(node_a "$cut_link")
  b=$(node_b "$cut_link")
  has_disconnect "$a" "$b" && has_disconnect "$b" "$a"
}
wait_until $(((detection_bound_ms + 999) / 1000 + 5)) "the cut link to be reported disconnected" cut_reported ||
  fail "phase 2: the cut link was not reported disconnected at both ends"
wait_until $((batch_seconds + 20)) "the uncut links to deliver the second batch" \
  all_milestones $((2 * count)) "$cut_link" || fail "phase 2: the uncut links did not deliver the second batch"

# Stop every node: all write their summaries first (SIGUSR2), and only then close (SIGTERM), so that no node's
# summary counts another's departure as a disconnection.
for pid in "${node_pids[@]}"; do
  kill -USR2 "$pid" 2>/dev/null
done
summarized() { [[ $(cat "$workdir"/node*.log | grep -c '^result ') == "$nodes" ]]; }
wait_until 10 "every node to write its summary" summarized || fail "not every node wrote its summary"
for pid in "${node_pids[@]}"; do
  kill -TERM "$pid" 2>/dev/null
done
for ((i = 0; i < nodes; i++)); do
  reap "${node_pids[i]}"
  ((reaped_status == 0)) || fail "node$i exited with status $reaped_status"
done
node_pids=()

# field NODE NEIGHBOR NAME: NAME= of NODE's summary line about NEIGHBOR (empty when missing).
field() {
  awk -v neighbor="neighbor=node$2" -v name="$3" '
    $1 == "summary" && $3 == neighbor {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) { print substr($i, length(name) + 2); exit } }
    }' "$workdir/node$1.log"
}
# ms_between T0 T1: milliseconds from T0 to T1 (seconds since the epoch, with fractions).
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }'; }

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
say "total time: $(((finished_ns - started_ns) / 1000000)) ms"
finish
