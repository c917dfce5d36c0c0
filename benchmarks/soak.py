"""`subledger bench soak`: a mixed load against a multi-process deployment, then the invariants.

The deployment: two `subledger serve` processes and one `subledger worker` (arq on Redis,
ticking every 2 s) on one PostgreSQL, and the sandbox gateway as its own server. Client
threads, each with its own users, call both APIs in turn over HTTP: purchases, spends,
subscribes, plan changes, cancels, refunds and wallet reads; one more thread moves the
test clock a day at a time, so renewals, dunning and expiries run (in the API that
advanced, and in the worker at the same time).

At the end: no balance may be negative, `audit verify` must find no mismatch, `audit
reconcile` no disagreement with the gateway, and no subscription period may have been
charged twice at the gateway. The figures are one JSON line on stdout (throughput, p50/p99
per operation, answers by code, violations); the exit status is 1 on any INTERNAL error,
any answer without a contract code, or any violation.

Throw-away PostgreSQL and Redis servers are started unless --database-url/--redis-url
(or SUBLEDGER_SOAK_DATABASE_URL/SUBLEDGER_SOAK_REDIS_URL) name existing ones; on a given
PostgreSQL the soak works in a fresh schema of its own.
"""
from __future__ import annotations

import random
import re
import shutil
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from benchmarks import gql_client as q
from benchmarks.common import emit
from benchmarks.deployment import Deployment, Postgres, Redis, make_workdir, service_env
from benchmarks.gql_client import GraphQL
from gateways.tls import client_ssl_context

#: Operation → weight in the mix.
MIX = {"purchase": 4, "spend": 8, "subscribe": 2, "change_plan": 2, "cancel": 1, "refund": 2, "wallet": 3}
#: Answers that mean the service failed, whatever the operation.
FAILURES = {"INTERNAL", q.TRANSPORT, q.NO_CODE}
POOR_CARD = "test_card_4300000000000002"
PERIOD_ORDER = re.compile(r"(sub-[0-9a-f]+-p\d+)-a\d+")


@dataclass
class SoakOptions:
    seconds: float
    clients: int = 6
    users_per_client: int = 5
    advance_every: float = 5.0
    database_url: str | None = None
    redis_url: str | None = None
    keep: bool = False


@dataclass
class User:
    id: str
    method: str = ""
    subscription: str | None = None
    plan: str = "basic"
    purchases: list[str] = field(default_factory=list)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.codes: dict[str, Counter[str]] = defaultdict(Counter)
        self.samples: list[str] = []  # a few bodies of failed answers, for the report

    def add(self, op: str, answer: q.Answer) -> None:
        with self.lock:
            self.latencies[op].append(answer.seconds)
            self.codes[op][answer.code or "OK"] += 1
            if answer.code in FAILURES and len(self.samples) < 5:
                self.samples.append(f"{op}: {answer.status} {answer.code} {answer.message} {answer.body[:300]}")


def period_counts(charges: list[dict[str, object]]) -> Counter[str]:
    """Charges per subscription period: order ids sub-<hex>-p<n>-a<attempt> (a plan change's
    own charge, sub-<hex>-p<n>-c<tag>, is not a period's renewal)."""
    found = (PERIOD_ORDER.fullmatch(str(c["orderId"])) for c in charges)
    return Counter(match.group(1) for match in found if match)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


def one_step(gql: GraphQL, user: User, op: str, rng: random.Random, stats: Stats) -> None:
    u = user.id
    if op == "purchase":
        answer = gql.call(q.PURCHASE, {"p": rng.choice(["starter", "regular"]), "m": user.method,
                                       "k": uuid.uuid4().hex}, user=u)
        if answer.ok and answer.data["purchasePoints"]["payment"]["status"] == "SUCCEEDED":
            user.purchases.append(answer.data["purchasePoints"]["payment"]["id"])
    elif op == "spend":
        answer = gql.call(q.SPEND, {"a": rng.randint(100, 1500), "s": uuid.uuid4().hex}, user=u)
    elif op == "subscribe":
        user.plan = rng.choice(["basic", "premium"])
        answer = gql.call(q.SUBSCRIBE, {"p": user.plan, "m": user.method, "t": rng.random() < 0.5}, user=u)
        if answer.ok:
            user.subscription = answer.data["subscribe"]["id"]
    elif op == "change_plan":
        if not user.subscription:
            return one_step(gql, user, "subscribe", rng, stats)
        target = "premium" if user.plan == "basic" else "basic"
        answer = gql.call(q.CHANGE, {"s": user.subscription, "p": target}, user=u)
        if answer.ok:
            user.plan = target
    elif op == "cancel":
        if not user.subscription:
            return one_step(gql, user, "subscribe", rng, stats)
        answer = gql.call(q.CANCEL, {"s": user.subscription}, user=u)
        if answer.ok or answer.code in ("CONFLICT", "NOT_FOUND"):
            user.subscription = None
    elif op == "refund":
        if not user.purchases:
            return one_step(gql, user, "purchase", rng, stats)
        payment = rng.choice(user.purchases)
        answer = gql.call(q.REFUND, {"p": payment, "a": rng.choice([None, 500, 1000]), "k": uuid.uuid4().hex},
                          user="soak-ops", scope="admin")
        if answer.ok and answer.data["refundPayment"]["status"] == "REFUNDED" or answer.code == "CONFLICT":
            user.purchases.remove(payment)
    else:
        answer = gql.call(q.WALLET, {"u": u}, user=u)
    stats.add(op, answer)
    return None


def setup_users(gql: GraphQL, count: int, rng: random.Random) -> list[User]:
    users = []
    for i in range(count):
        user = User(f"soak-{uuid.uuid4().hex[:10]}")
        card = POOR_CARD if i % 5 == 4 else q.GOOD_CARD  # one in five is declined: dunning runs too
        answer = gql.call(q.REGISTER, {"k": card, "c": f"cust-{user.id}"}, user=user.id)
        if not answer.ok:
            raise SystemExit(f"setup failed: registerPaymentMethod answered {answer.code}: {answer.message}")
        user.method = answer.data["registerPaymentMethod"]["id"]
        users.append(user)
    return users


def drive(urls: list[str], options: SoakOptions, stats: Stats) -> tuple[list[User], float, int]:
    """Run the load for options.seconds; returns the users, the elapsed seconds and the days advanced."""
    rng = random.Random(7)
    setup = GraphQL(urls[0])
    users = setup_users(setup, options.clients * options.users_per_client, rng)
    stop = threading.Event()
    days = [0]
    ops, weights = list(MIX), list(MIX.values())

    def client(index: int) -> None:
        gqls = [GraphQL(url) for url in urls]
        mine = users[index * options.users_per_client:(index + 1) * options.users_per_client]
        local = random.Random(index)
        step = 0
        while not stop.is_set():
            step += 1
            one_step(gqls[step % len(gqls)], local.choice(mine), local.choices(ops, weights)[0], local, stats)
        for gql in gqls:
            gql.close()

    def clock() -> None:
        gqls = [GraphQL(url, timeout=600) for url in urls]
        while not stop.wait(options.advance_every):
            gql = gqls[days[0] % len(gqls)]
            now = gql.call(q.NOW)
            if not now.ok:
                stats.add("advance_clock", now)
                continue
            target = datetime.fromisoformat(now.data["clock"]["now"]) + timedelta(days=1)
            answer = gql.call(q.ADVANCE, {"to": target.isoformat()}, user="soak-ops", scope="admin")
            stats.add("advance_clock", answer)
            days[0] += answer.ok

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(options.clients)]
    threads.append(threading.Thread(target=clock, daemon=True))
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(options.seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=900)
    return users, time.perf_counter() - began, days[0]


def check(deployment: Deployment, api_url: str, sandbox_url: str, users: list[User]) -> dict[str, object]:
    """The invariants, once the load has stopped."""
    gql = GraphQL(api_url, timeout=600)
    negative = []
    for user in users:
        answer = gql.call(q.WALLET, {"u": user.id}, user="soak-ops", scope="admin")
        if not answer.ok:
            negative.append(f"{user.id}: wallet unreadable ({answer.code})")
            continue
        wallet = answer.data["wallet"]
        if min(wallet["totalBalance"], wallet["usableBalance"], wallet["pendingBalance"]) < 0:
            negative.append(f"{user.id}: {wallet}")
    charges = httpx.get(f"{sandbox_url}/sandbox/charges", timeout=60, verify=client_ssl_context()).json()["charges"]
    periods = period_counts(charges)
    twice = sorted(period for period, n in periods.items() if n > 1)
    verify = deployment.cli("audit", "verify")
    reconcile = deployment.cli("audit", "reconcile")
    return {
        "negative_balances": negative,
        "verify_exit": verify.returncode,
        "verify_mismatches": [line for line in verify.stdout.splitlines() if line.strip()][:20],
        "reconcile_exit": reconcile.returncode,
        "reconciliation_findings": [line for line in reconcile.stdout.splitlines() if line.strip()][:20],
        "periods_charged_twice": twice[:20],
        "gateway_charges": len(charges),
        "verify_summary": verify.stderr.strip().splitlines()[-1:],
        "reconcile_summary": reconcile.stderr.strip().splitlines()[-1:],
    }


def report(stats: Stats, elapsed: float, days: int, invariants: dict[str, object], options: SoakOptions) -> int:
    per_op = {}
    for op in sorted(stats.latencies):
        values = stats.latencies[op]
        per_op[op] = {
            "count": len(values),
            "p50_ms": round(percentile(values, 50) * 1000, 1),
            "p99_ms": round(percentile(values, 99) * 1000, 1),
            "answers": dict(stats.codes[op].most_common()),
        }
    by_code: Counter[str] = Counter()
    for counts in stats.codes.values():
        by_code.update({code: n for code, n in counts.items() if code != "OK"})
    total = sum(len(v) for v in stats.latencies.values())
    failures = sum(by_code[code] for code in FAILURES)
    violations = (len(invariants["negative_balances"]) + len(invariants["periods_charged_twice"])
                  + (invariants["verify_exit"] != 0) + (invariants["reconcile_exit"] != 0))
    emit(
        "soak",
        seconds=round(elapsed, 1),
        deployment={"serve": 2, "worker": 1, "database": "postgresql", "gateway": "sandbox server"},
        clients=options.clients,
        users=options.clients * options.users_per_client,
        test_clock_days_advanced=days,
        operations=total,
        throughput_ops_per_s=round(total / elapsed, 1) if elapsed else 0,
        per_operation=per_op,
        errors_by_code=dict(by_code.most_common()),
        internal_errors=by_code["INTERNAL"],
        failures=failures,
        failure_samples=stats.samples,
        invariants=invariants,
        violations=violations,
        ok=failures == 0 and violations == 0,
    )
    return 0 if failures == 0 and violations == 0 else 1


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT")


def logged_errors(log: str, limit: int = 10) -> list[str]:
    """The first `limit` error entries of a process's log, each with its traceback."""
    entries: list[list[str]] = []
    current: list[str] | None = None
    for line in log.splitlines():
        if LOG_LINE.match(line):
            current = None
            if "[error" in line and len(entries) < limit:
                current = [line]
                entries.append(current)
        elif current is not None:
            current.append(line)
    return ["\n".join(entry) for entry in entries]


def run(options: SoakOptions) -> int:
    workdir = make_workdir("subledger-soak.")
    postgres = redis = None
    deployment = None
    try:
        database_url = options.database_url
        if database_url:
            database_url += ("&" if "?" in database_url else "?") + f"schema=soak_{uuid.uuid4().hex[:10]}"
        else:
            postgres = Postgres(workdir).start()
            database_url = postgres.url
        redis_url = options.redis_url
        if not redis_url:
            redis = Redis(workdir).start()
            redis_url = redis.url
        print(f"soak: deployment in {workdir} (logs there)", file=sys.stderr)
        env = service_env(database_url, redis_url=redis_url)
        env.pop("SUBLEDGER_SETTLE_GRACE_SECONDS")  # the production grace: the soak checks it
        deployment = Deployment(workdir, env)
        sandbox = deployment.sandbox()
        deployment.env["SUBLEDGER_SANDBOX_URL"] = sandbox.url
        apis = [deployment.serve(), deployment.serve()]
        deployment.worker(SUBLEDGER_WORKER_TICK_SECONDS="2", SUBLEDGER_CHARGE_CONCURRENCY="8")
        stats = Stats()
        users, elapsed, days = drive([api.url for api in apis], options, stats)
        time.sleep(3)  # the worker's last tick ends; nothing new is due once the clock stops
        invariants = check(deployment, apis[0].url, sandbox.url, users)
        status = report(stats, elapsed, days, invariants, options)
        if status != 0:  # the workdir goes with the run: what the processes logged as errors, here
            for process in deployment.processes:
                for entry in logged_errors(process.log()):
                    print(f"--- {process.log_path.name}:\n{entry}", file=sys.stderr)
        return status
    finally:
        if deployment is not None:
            deployment.stop()
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)

