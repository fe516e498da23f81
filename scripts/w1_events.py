# The whole-pipeline benchmark's events (bench-w1.sh): N EventBridge-style order events of ~410
# bytes as JSON lines, five departments, amounts from 1 to 500; seeded, so every run writes the
# same events. Usage: python3 scripts/w1_events.py N > events.jsonl
import json, random, sys

random.seed(23)
depts = ["billing", "fulfillment", "support", "returns", "marketing"]
for i in range(int(sys.argv[1])):
    customer = f"C{random.randint(1, 50000):06d}"
    print(json.dumps({
        "version": "0", "id": f"{random.getrandbits(128):032x}", "detail-type": "OrderPlaced",
        "source": "shop.orders", "account": "123456789012", "time": "2026-11-22T10:00:00Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"seq": i, "orderId": f"O{i}", "customer": customer,
                   "email": f"{customer.lower()}@example.com", "department": random.choice(depts),
                   "amount": round(random.uniform(1, 500), 2),
                   "items": [{"sku": f"SKU-{random.randint(1, 999):03d}", "qty": random.randint(1, 5),
                              "price": round(random.uniform(1, 100), 2)} for _ in range(2)]}},
        separators=(",", ":")))
