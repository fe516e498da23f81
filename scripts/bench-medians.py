#!/usr/bin/env python3
"""Medians over a broker benchmark's rounds (scripts/bench-rabbitmq.sh, scripts/bench-nats.sh).

Reads a file of rounds, one line each with five rates: (a) the plain consumer, (a2) the plain
consumer that fsyncs before it acknowledges, (b) weir as a source, (c) the plain publisher, (d)
weir as a sink. Brokers on this machine run some rounds at about twice the rate of others,
whichever client reads: medians, with the range and the ratios pair by pair.
"""
import statistics
import sys

rows = [[float(x) for x in line.split()] for line in open(sys.argv[1]) if line.strip()]
a, a2, b, c, d = ([r[i] for r in rows] for i in range(5))
m = statistics.median


def show(xs):
    return f"{m(xs):.0f}/s ({min(xs):.0f}-{max(xs):.0f})"


def pairs(xs, ys):
    return ", ".join(f"{x / y:.2f}" for x, y in zip(xs, ys))


print(f"{len(rows)} rounds, medians (range)")
print(f"source: weir {show(b)} vs plain {show(a)} = {m(b) / m(a):.2f}x (pair by pair {pairs(b, a)}); "
      f"vs the fsyncing plain consumer {show(a2)} = {m(b) / m(a2):.2f}x")
print(f"sink:   weir {show(d)} vs plain {show(c)} = {m(d) / m(c):.2f}x (pair by pair {pairs(d, c)})")
