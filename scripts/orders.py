# Order events for the file benchmarks (bench-file.sh, bench-targets.sh): N JSON lines of ~350
# bytes, EventBridge-shaped, a quarter in each of four departments, 5,000 customers; seeded, so
# every run writes the same events. Usage: python3 scripts/orders.py N > events.jsonl
import json, sys, random
random.seed(1)
depts = ["billing", "shipping", "support", "returns"]
for i in range(int(sys.argv[1])):
    print(json.dumps({"version": "0", "id": f"ev-{i:012d}", "detail-type": "OrderCreated", "source": "shop.orders",
        "account": "123456789012", "time": "2026-11-22T10:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"orderId": f"O{i}", "customerId": f"C{i % 5000:05d}", "department": depts[i % 4],
                   "amount": round(random.uniform(1, 500), 2), "currency": "EUR",
                   "items": [{"sku": f"SKU-{random.randint(1, 999):03d}", "qty": random.randint(1, 5)} for _ in range(2)]}},
        separators=(",", ":")))
