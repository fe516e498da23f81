# Runs benchmark commands in rounds (A B C ... A B C ...), so that a drift in the machine's speed
# touches each alike, and prints each one's median wall time, CPU time (user + system, of the
# command and the children it waited for) and peak resident memory, with its ratios to the first
# (the baseline).
# Usage: python3 scripts/bench_rounds.py ROUNDS LABEL COMMAND [LABEL COMMAND ...]
# (COMMAND: one string, split as a shell splits words; no shell runs it unless it says sh -c.)
import os, shlex, statistics, subprocess, sys, tempfile, time

rounds = int(sys.argv[1])
pairs = list(zip(sys.argv[2::2], sys.argv[3::2]))


# GNU time measures: a child of this Python process would carry Python's own resident size into
# its peak (Linux keeps the peak across exec), hiding a small program's.
TIME = "/usr/bin/time"
if not os.access(TIME, os.X_OK):
    sys.exit("error: GNU time is needed at /usr/bin/time (Debian: apt install time)")


def run(cmd):
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.monotonic()
        argv = [TIME, "-f", "%U %S %M", "-o", report.name] + shlex.split(cmd)
        child = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.monotonic() - start
        if child.returncode != 0:
            err = child.stderr.decode(errors="replace")
            sys.exit(f"error: `{cmd}` failed ({child.returncode}):\n{err[-2000:]}")
        user, system, peak_kb = report.read().split()[-3:]
    return wall, float(user) + float(system), int(peak_kb) / 1024


# One round first that is not counted (WARMUP=0: none): files in the page cache, plugins compiled
# into their state directory's cache, as on a service that restarts.
for _ in range(int(os.environ.get("WARMUP", "1"))):
    for label, cmd in pairs:
        run(cmd)
results = {label: [] for label, _ in pairs}
for r in range(rounds):
    for label, cmd in pairs:
        results[label].append(run(cmd))
        w, c, m = results[label][-1]
        print(f"  round {r + 1}: {label:<48} {w:6.2f} s wall {c:6.2f} s cpu {m:6.0f} MiB", file=sys.stderr)

base = [statistics.median(x[i] for x in results[pairs[0][0]]) for i in range(3)]
print(f"{'':<48} {'wall':>8} {'cpu':>8} {'peak RSS':>9} {'wall/base':>10} {'cpu/base':>9}")
for label, _ in pairs:
    wall, cpu, rss = (statistics.median(x[i] for x in results[label]) for i in range(3))
    print(f"{label:<48} {wall:7.2f}s {cpu:7.2f}s {rss:6.0f} MiB {wall / base[0]:9.2f}x {cpu / base[1]:8.2f}x")
