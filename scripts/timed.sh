# Sourced by the benchmark scripts. `timed LABEL COMMAND...` runs the command (output discarded)
# and prints its wall time and the rate for $n events.
timed() {
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  end=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print(f'{sys.argv[3]:<44} {s:7.2f} s  {int(sys.argv[4])/s:>12,.0f} events/s')" "$start" "$end" "$label" "$n"
}
