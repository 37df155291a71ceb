"""The console benchmark's dataset: 200,000 members and 2,000,000 orders on PostgreSQL.

The organisation, the programme and the staff users are made through the services; the
bulk (members, identities, orders, order lines, the ledger with its lots and allocations,
redemptions, tier history, outbox events) is generated inside PostgreSQL with
``INSERT … SELECT generate_series`` in one transaction, which takes minutes instead of
hours. The bulk keeps every ledger invariant ``loyalist ledger verify`` checks:

* each member order credits one lot through an ``earn`` entry (pending); a lot whose
  ``available_at`` has passed was activated by an ``activate`` entry;
* lots past their expiry were expired by an ``expire`` entry and an allocation;
* about 30% of the members redeemed a coupon, consuming lots soonest-expiring first, with
  one allocation per lot taken;
* each points account equals the sum of its entries, and the sum of its open lots.

Orders are spread evenly over two years; 40% of the members joined before that, the rest
join evenly during it, and an order's member is drawn among those who had joined by then.
Finally the dashboard's daily rollup is folded, as a running console would have done.

The dataset is cached: ``ensure()`` regenerates only when the database is missing, holds
another size, or was made by an older generator (``bench_meta``). Newer migrations are
applied to a cached dataset, never regenerated for.

Usage: .venv/bin/python benchmarks/gen_dataset.py [--members 200000] [--orders 2000000]
       [--db loyalist_bench_console] [--force]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_HOST = "127.0.0.1"
PG_PORT = 5432
# Not ``loyalist_bench``: bench_earn.py recreates that database on every run, which would
# throw this (slow to build) dataset away.
DEFAULT_DB = "loyalist_bench_console"
GENERATOR_VERSION = "4"
PROGRAMME = ROOT / "src" / "loyalist" / "demo" / "programme.yaml"
STAFF_PASSWORD = "bench-console-2026"
REGIONS = 5
STORES_PER_REGION = 10
GUEST_SHARE = 0.15  # orders without a member
SPAN_DAYS = 730  # history length
ESTABLISHED = 0.4  # share of members who joined before the two years of history
REDEEMERS = 0.30  # share of members who redeemed a coupon
# Rewards without stock or per-member limits (a bulk redemption cannot run them out).
SEQUENCED = (
    "member",
    "member_identity",
    "orders",
    "order_line",
    "ledger_entry",
    "points_lot",
    "lot_allocation",
    "redemption",
    "tier_change",
    "points_account",
    "points_account_member",
    "outbox_event",
)
COUPONS = [("coupon-10", 1000), ("coupon-30", 2800), ("upsize", 500), ("charity-tree", 1000)]


def log(msg: str) -> None:
    print(msg, flush=True)


def url_of(db: str) -> str:
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{db}"


def _conninfo(db: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user=postgres dbname={db}"


@dataclass(frozen=True)
class Dataset:
    db: str
    members: int
    orders: int
    generated_at: datetime
    admin: str
    region_manager: str
    region: str
    store_staff: str
    store: str
    password: str = STAFF_PASSWORD

    @property
    def url(self) -> str:
        return url_of(self.db)


def ensure_postgres() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh")], check=True)


def _meta(db: str) -> dict[str, str] | None:
    try:
        with psycopg.connect(_conninfo(db), autocommit=True) as conn:
            if conn.execute("SELECT to_regclass('bench_meta')").fetchone() == (None,):
                return None
            return {k: v for k, v in conn.execute("SELECT key, value FROM bench_meta")}
    except psycopg.OperationalError:
        return None


def _dataset(db: str, meta: dict[str, str]) -> Dataset:
    return Dataset(
        db=db,
        members=int(meta["members"]),
        orders=int(meta["orders"]),
        generated_at=datetime.fromisoformat(meta["generated_at"]),
        admin=meta["admin"],
        region_manager=meta["region_manager"],
        region=meta["region"],
        store_staff=meta["store_staff"],
        store=meta["store"],
    )


def ensure(members: int, orders: int, db: str = DEFAULT_DB, force: bool = False) -> Dataset:
    """The dataset of this size in ``db``: reused when present, generated otherwise."""
    from loyalist.kit.migrate import upgrade

    ensure_postgres()
    meta = _meta(db)
    if (
        not force
        and meta is not None
        and meta.get("complete") == "yes"
        and meta.get("version") == GENERATOR_VERSION
        and (meta.get("members"), meta.get("orders")) == (str(members), str(orders))
    ):
        log(f"dataset: reusing {db} ({members:,} members, {orders:,} orders)")
        upgrade(url_of(db))  # newer migrations (indexes) apply to the cached data
        return _dataset(db, meta)
    return generate(members, orders, db)


def _recreate(db: str) -> None:
    with psycopg.connect(_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')


def _setup(url: str) -> dict[str, str]:
    """Organisation, programme and staff through the services."""
    from loyalist.kit.db import Database
    from loyalist.org import service as org
    from loyalist.programme import service as programmes
    from loyalist.staff import service as staff

    db = Database(url)
    try:
        with db.transaction() as s:
            org.create_unit(s, code="hq", name="总部", kind="hq")
            for r in range(1, REGIONS + 1):
                org.create_unit(s, code=f"r{r}", name=f"区域 {r}", kind="region", parent_code="hq")
                for k in range(1, STORES_PER_REGION + 1):
                    org.create_unit(
                        s,
                        code=f"r{r}s{k:02d}",
                        name=f"门店 {r}-{k}",
                        kind="store",
                        parent_code=f"r{r}",
                    )
            programmes.apply(s, programmes.load_file(PROGRAMME), actor="bench")
            users = {
                "admin": ("bench.admin", "hq_admin", "hq"),
                "region_manager": ("bench.manager", "regional_manager", "r1"),
                "store_staff": ("bench.staff", "store_staff", "r1s01"),
            }
            for login, role, unit in users.values():
                staff.create_user(
                    s, login=login, role=role, unit_code=unit, password=STAFF_PASSWORD
                )
    finally:
        db.dispose()
    return {
        "admin": "bench.admin",
        "region_manager": "bench.manager",
        "region": "r1",
        "store_staff": "bench.staff",
        "store": "r1s01",
    }


def _steps(n_members: int, n_orders: int) -> list[tuple[str, str]]:
    """(label, SQL) in order; :T0 is the generation instant, everything happens before it."""
    o = n_orders
    span = SPAN_DAYS
    n0 = int(n_members * ESTABLISHED)  # members who joined before the history starts
    guest_pct = int(GUEST_SHARE * 100)
    coupons = ", ".join(f"('{c}', {p}, {i})" for i, (c, p) in enumerate(COUPONS))
    local = "AT TIME ZONE 'Asia/Shanghai'"
    return [
        (
            "stores",
            """CREATE TEMP TABLE st AS
               SELECT (row_number() OVER (ORDER BY id) - 1)::int AS k, id, path, code
               FROM org_unit WHERE kind = 'store'""",
        ),
        (
            "members",
            f"""INSERT INTO member (id, member_no, external_id, phone, email, name, birthday,
                  gender, city, home_store_id, org_path, join_channel, status, tier_code,
                  tier_since, tier_expires_at, tier_periods_below, tier_evaluated_period,
                  created_at, updated_at)
               SELECT g.i, 'M' || lpad(g.i::text, 9, '0'), NULL,
                      '+86139' || lpad(g.i::text, 8, '0'), NULL,
                      (ARRAY['王','李','张','刘','陈','杨','赵','黄'])[1 + g.i % 8]
                        || '会员' || g.i,
                      DATE '1970-01-01' + (g.i * 7 % 15000),
                      (ARRAY['female','male'])[1 + g.i % 2],
                      (ARRAY['上海','杭州','南京','深圳','广州'])[1 + g.i % 5],
                      st.id, st.path, (ARRAY['pos','app','miniprogram'])[1 + g.i % 3],
                      'active', 'base', g.c, NULL, 0, NULL, g.c, g.c
               FROM (SELECT i, (hashint4(i) & 2147483647) % (SELECT count(*) FROM st) AS k,
                            CASE WHEN i <= {n0}
                                 THEN :T0 - interval '{span} days'
                                      - ({n0} - i)::float8 / {n0} * interval '1095 days'
                                 ELSE :T0 - interval '{span} days'
                                      + (i - {n0})::float8 / ({n_members} - {n0})
                                        * interval '{span} days'
                            END AS c
                     FROM generate_series(1, {n_members}) AS i) g
               JOIN st ON st.k = g.k""",
        ),
        (
            "identities",
            """INSERT INTO member_identity (member_id, kind, value, created_at)
               SELECT id, 'phone', phone, created_at FROM member""",
        ),
        (
            "orders",
            f"""CREATE TEMP TABLE ob AS
               SELECT j, r1, r2, r3,
                      CASE WHEN j % 100 >= {guest_pct}
                           THEN 1 + floor(r4 * ({n0} + floor(({n_members} - {n0}) * r1)))::int
                      END AS member_id
               FROM (SELECT j, random() AS r1, random() AS r2, random() AS r3, random() AS r4
                     FROM generate_series(1, {o}) AS j) g""",
        ),
        (
            "orders",
            f"""INSERT INTO orders (id, external_id, member_id, store_id, org_path, channel,
                  occurred_at, currency, gross_minor, amount_paid_minor, points_paid,
                  points_earned, line_points, breakdown, refunded_minor, points_clawed,
                  points_paid_restored, status, programme_version, available_at, created_at)
               SELECT x.j, 'B-' || x.j, x.member_id, x.store_id, x.path,
                      (ARRAY['pos','pos','pos','app','miniprogram'])[1 + x.j % 5],
                      x.at, 'CNY', x.amount, x.amount, 0,
                      CASE WHEN x.member_id IS NULL THEN 0 ELSE x.amount / 100 END,
                      CASE WHEN x.member_id IS NULL THEN '{{}}'::json
                           ELSE json_build_object('1', x.amount / 100) END,
                      CASE WHEN x.member_id IS NULL THEN '[]'::json
                           ELSE json_build_array(json_build_object('rule', 'base',
                                'points', x.amount / 100, 'lines', json_build_array(1),
                                'description', '1 point per 1.00 CNY paid')) END,
                      0, 0, 0, 'recorded',
                      CASE WHEN x.member_id IS NULL THEN NULL ELSE 1 END,
                      CASE WHEN x.member_id IS NULL THEN NULL
                           ELSE (date_trunc('day', x.at {local}) + interval '8 days') {local}
                      END,
                      x.at
               FROM (
                 SELECT ob.j, ob.member_id,
                        800 + floor(ob.r2 * ob.r2 * 40000)::bigint AS amount,
                        COALESCE(CASE WHEN ob.r3 < 0.8 THEN m.home_store_id END, rs.id) AS store_id,
                        COALESCE(CASE WHEN ob.r3 < 0.8 THEN m.org_path END, rs.path) AS path,
                        :T0 - interval '{span} days' + ob.r1 * interval '{span} days' AS at
                 FROM ob
                 LEFT JOIN member m ON m.id = ob.member_id
                 JOIN st rs ON rs.k = (hashint4(ob.j + 7) & 2147483647)
                                      % (SELECT count(*) FROM st)
               ) x""",
        ),
        (
            "order lines",
            """INSERT INTO order_line (order_id, line_no, sku, category, quantity,
                  unit_price_minor, discount_minor, net_minor, returned_quantity)
               SELECT id, 1, (ARRAY['LATTE','AMERICANO','CROISSANT','CAKE','BEANS'])[1 + id % 5],
                      (ARRAY['coffee','coffee','bakery','bakery','coffee_beans'])[1 + id % 5],
                      1, amount_paid_minor, 0, amount_paid_minor, 0
               FROM orders""",
        ),
        (
            "earn entries",
            """INSERT INTO ledger_entry (id, account_id, member_id, kind, delta_available,
                  delta_pending, delta_debt, source_type, source_id, actor, reason,
                  corrects_entry_id, programme_version, details, dedupe_key, occurred_at,
                  created_at)
               SELECT id, member_id, member_id, 'earn', 0, points_earned, 0, 'order', id::text,
                      'apikey:bench', 'order ' || external_id, NULL, 1, NULL,
                      'order:' || id || ':earn', occurred_at, occurred_at
               FROM orders WHERE member_id IS NOT NULL""",
        ),
        (
            "lots",
            f"""INSERT INTO points_lot (id, account_id, member_id, entry_id, points, remaining,
                  status, source_type, source_id, earned_at, available_at, expires_at,
                  reminded_days)
               SELECT id, member_id, member_id, id, points_earned, points_earned,
                      CASE WHEN available_at <= :T0 THEN 'available' ELSE 'pending' END,
                      'order', id::text, occurred_at, available_at,
                      make_timestamptz(extract(year FROM occurred_at {local})::int + 2, 1, 1,
                                       0, 0, 0, 'Asia/Shanghai'),
                      NULL
               FROM orders WHERE member_id IS NOT NULL""",
        ),
        (
            "activations",
            f"""INSERT INTO ledger_entry (id, account_id, member_id, kind, delta_available,
                  delta_pending, delta_debt, source_type, source_id, actor, reason,
                  corrects_entry_id, programme_version, details, dedupe_key, occurred_at,
                  created_at)
               SELECT {o} + id, member_id, member_id, 'activate', points, -points, 0, 'lot',
                      id::text,
                      'system:jobs', NULL, entry_id, NULL, NULL, 'activate:lot:' || id,
                      available_at, available_at
               FROM points_lot WHERE status = 'available'""",
        ),
        (
            "expiry",
            f"""INSERT INTO ledger_entry (id, account_id, member_id, kind, delta_available,
                  delta_pending, delta_debt, source_type, source_id, actor, reason,
                  corrects_entry_id, programme_version, details, dedupe_key, occurred_at,
                  created_at)
               SELECT {2 * o} + id, member_id, member_id, 'expire', -remaining, 0, 0, 'lot',
                      id::text,
                      'system:expiry', NULL, NULL, NULL,
                      json_build_object('lots', json_build_array(json_build_array(id, remaining))),
                      NULL, expires_at, expires_at
               FROM points_lot WHERE status = 'available' AND expires_at <= :T0""",
        ),
        (
            "expiry",
            f"""INSERT INTO lot_allocation (entry_id, lot_id, points)
               SELECT {2 * o} + id, id, -remaining
               FROM points_lot WHERE status = 'available' AND expires_at <= :T0""",
        ),
        (
            "expiry",
            """UPDATE points_lot SET remaining = 0, status = 'expired'
               WHERE status = 'available' AND expires_at <= :T0""",
        ),
        (
            "redemptions",
            f"""CREATE TEMP TABLE red AS
               SELECT row_number() OVER (ORDER BY b.member_id)::bigint AS k, b.member_id,
                      c.code, c.cost, rw.id AS reward_id, m.org_path, m.home_store_id,
                      :T0 - (1 + (hashint4(b.member_id) & 2147483647) % 48) * interval '1 hour'
                        AS at
               FROM (SELECT member_id, sum(remaining) AS bal FROM points_lot
                     WHERE status = 'available' AND available_at <= :T0 - interval '3 days'
                     GROUP BY member_id) b
               JOIN member m ON m.id = b.member_id
               JOIN (VALUES {coupons}) AS c(code, cost, n)
                 ON c.n = (hashint4(b.member_id + 11) & 2147483647) % {len(COUPONS)}
               JOIN reward rw ON rw.code = c.code
               WHERE b.bal >= c.cost
                 AND (hashint4(b.member_id + 3) & 2147483647) % 1000 < {int(REDEEMERS * 1000)}""",
        ),
        (
            "redemptions",
            """CREATE TEMP TABLE take AS
               SELECT l.lot_id, l.member_id, l.k,
                      least(l.remaining, l.cost - (l.cum - l.remaining)) AS n
               FROM (SELECT p.id AS lot_id, p.member_id, p.remaining, r.cost, r.k,
                            sum(p.remaining) OVER (PARTITION BY p.member_id
                                                   ORDER BY p.expires_at, p.id) AS cum
                     FROM points_lot p JOIN red r ON r.member_id = p.member_id
                     WHERE p.status = 'available'
                       AND p.available_at <= :T0 - interval '3 days') l
               WHERE l.cum - l.remaining < l.cost""",
        ),
        (
            "redemptions",
            f"""INSERT INTO ledger_entry (id, account_id, member_id, kind, delta_available,
                  delta_pending, delta_debt, source_type, source_id, actor, reason,
                  corrects_entry_id, programme_version, details, dedupe_key, occurred_at,
                  created_at)
               SELECT {3 * o} + k, member_id, member_id, 'redeem', -cost, 0, 0, 'redemption',
                      k::text,
                      'apikey:bench', 'redeemed 1 × ' || code, NULL, 1, NULL,
                      'redemption:' || k || ':redeem', at, at
               FROM red""",
        ),
        (
            "redemptions",
            f"""INSERT INTO lot_allocation (entry_id, lot_id, points)
               SELECT {3 * o} + k, lot_id, -n FROM take""",
        ),
        (
            "redemptions",
            """UPDATE points_lot p SET remaining = p.remaining - t.n,
                      status = CASE WHEN p.remaining = t.n THEN 'closed' ELSE p.status END
               FROM take t WHERE t.lot_id = p.id""",
        ),
        (
            "redemptions",
            f"""INSERT INTO redemption (id, member_id, reward_id, store_id, org_path, quantity,
                  points, cash_minor, currency, status, entry_id, cancel_entry_id,
                  cancel_reason, created_at, cancelled_at)
               SELECT k, member_id, reward_id, home_store_id, org_path, 1, cost, 0, 'CNY',
                      'completed', {3 * o} + k, NULL, NULL, at, NULL
               FROM red""",
        ),
        (
            "redemptions",
            """INSERT INTO reward_usage (member_id, reward_id, used)
               SELECT member_id, reward_id, 1 FROM red""",
        ),
        (
            "accounts",
            """INSERT INTO points_account (id, owner_member_id, available, pending, debt,
                  lifetime_earned, created_at, updated_at)
               SELECT m.id, m.id, COALESCE(e.a, 0), COALESCE(e.p, 0), COALESCE(e.d, 0),
                      COALESCE(e.earned, 0), m.created_at, COALESCE(e.at, m.created_at)
               FROM member m LEFT JOIN (
                 SELECT account_id, sum(delta_available) AS a, sum(delta_pending) AS p,
                        sum(delta_debt) AS d,
                        sum(CASE WHEN kind = 'earn' THEN delta_pending + delta_available END)
                          AS earned,
                        max(occurred_at) AS at
                 FROM ledger_entry GROUP BY account_id) e ON e.account_id = m.id""",
        ),
        (
            "accounts",
            """INSERT INTO points_account_member (account_id, member_id, role, can_spend,
                  joined_at)
               SELECT id, owner_member_id, 'owner', true, created_at FROM points_account""",
        ),
        (
            "tiers",
            """CREATE TEMP TABLE tiered AS
               SELECT m.id AS member_id, m.created_at, s.spend,
                      CASE WHEN s.spend >= 2000000 THEN 'black'
                           WHEN s.spend >= 800000 THEN 'platinum'
                           WHEN s.spend >= 300000 THEN 'gold'
                           WHEN s.spend >= 100000 THEN 'silver' END AS tier,
                      greatest(m.created_at, :T0 - (1 + m.id % 90) * interval '1 day') AS at
               FROM member m JOIN (
                 SELECT member_id, sum(amount_paid_minor) AS spend FROM orders
                 WHERE member_id IS NOT NULL AND occurred_at > :T0 - interval '365 days'
                 GROUP BY member_id) s ON s.member_id = m.id""",
        ),
        (
            "tiers",
            """INSERT INTO tier_change (member_id, from_tier, to_tier, reason, metric_value,
                  period, programme_version, occurred_at)
               SELECT id, NULL, 'base', 'join', 0, NULL, 1, created_at FROM member""",
        ),
        (
            "tiers",
            """INSERT INTO tier_change (member_id, from_tier, to_tier, reason, metric_value,
                  period, programme_version, occurred_at)
               SELECT member_id, 'base', tier, 'upgrade', least(spend, 2000000000), NULL, 1, at
               FROM tiered WHERE tier IS NOT NULL""",
        ),
        (
            "tiers",
            """UPDATE member m SET tier_code = t.tier, tier_since = t.at
               FROM tiered t WHERE t.member_id = m.id AND t.tier IS NOT NULL""",
        ),
        (
            "events",
            """INSERT INTO outbox_event (event_id, type, schema_version, member_id, org_path,
                  payload, occurred_at, dispatched_at)
               SELECT gen_random_uuid()::text, 'member.created', 1, id, org_path,
                      json_build_object('member_id', id, 'member_no', member_no,
                                        'tier', 'base', 'by', 'apikey:bench'),
                      created_at, created_at
               FROM member""",
        ),
        (
            "events",
            """INSERT INTO outbox_event (event_id, type, schema_version, member_id, org_path,
                  payload, occurred_at, dispatched_at)
               SELECT gen_random_uuid()::text, 'order.recorded', 1, member_id, org_path,
                      json_build_object('order_id', id, 'external_id', external_id,
                                        'member_id', member_id,
                                        'amount_paid_minor', amount_paid_minor,
                                        'points_earned', points_earned),
                      occurred_at, occurred_at
               FROM orders""",
        ),
    ]


def generate(n_members: int, n_orders: int, db: str = DEFAULT_DB) -> Dataset:
    from loyalist.kit.migrate import upgrade

    started = time.monotonic()
    log(f"dataset: generating {n_members:,} members and {n_orders:,} orders into {db}")
    _recreate(db)
    upgrade(url_of(db))
    who = _setup(url_of(db))
    t0 = datetime.now(UTC).replace(microsecond=0)
    with psycopg.connect(_conninfo(db)) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK triggers in the bulk
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET work_mem = '256MB'")
        conn.execute("SELECT setseed(0.42)")
        for label, sql in _steps(n_members, n_orders):
            t = time.monotonic()
            query = sql.replace("%", "%%").replace(":T0", "%(t0)s")
            conn.execute(query, {"t0": t0})  # type: ignore[call-overload]
            log(f"  {label:<12} {time.monotonic() - t:6.1f} s")
        for table in SEQUENCED:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT COALESCE(max(id), 1) FROM {table}))"
            )
        conn.execute("CREATE TABLE bench_meta (key text PRIMARY KEY, value text NOT NULL)")
        meta = {
            "version": GENERATOR_VERSION,
            "members": str(n_members),
            "orders": str(n_orders),
            "generated_at": t0.isoformat(),
            **who,
        }
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO bench_meta VALUES (%s, %s)", list(meta.items()))
        conn.commit()
    t = time.monotonic()
    with psycopg.connect(_conninfo(db), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    log(f"  {'vacuum':<12} {time.monotonic() - t:6.1f} s")
    t = time.monotonic()
    folded = fold_rollup(url_of(db))
    with psycopg.connect(_conninfo(db), autocommit=True) as conn:
        conn.execute("INSERT INTO bench_meta VALUES ('complete', 'yes')")
    log(f"  {'rollup':<12} {time.monotonic() - t:6.1f} s (ids up to {folded:,} folded)")
    log(f"dataset: ready in {time.monotonic() - started:.0f} s")
    meta = _meta(db)
    assert meta is not None
    return _dataset(db, meta)


def fold_rollup(url: str) -> int:
    """Fold every order and ledger entry into the dashboard's daily rollup (as the console
    does over time), in transactions of a bounded size."""
    from datetime import timedelta

    from loyalist.dashboard import service as dashboards
    from loyalist.kit.db import Database

    database = Database(url)
    total = 0
    try:
        while True:
            with database.transaction() as s:
                n = dashboards.refresh(s, margin=timedelta(0), batch=250_000)
            if not n:
                break
            total += n
    finally:
        database.dispose()
    if total and url.startswith("postgresql"):
        # Folding in batches updates each day's row many times: compact the dead versions
        # (a running console updates only today's rows, which autovacuum keeps small).
        db = url.rsplit("/", 1)[1]
        with psycopg.connect(_conninfo(db), autocommit=True) as conn:
            conn.execute("VACUUM FULL ANALYZE dashboard_daily")
    return total


def verify(ds: Dataset) -> int:
    """``loyalist ledger verify`` on the dataset; returns its exit status."""
    import os

    env = {**os.environ, "LOYALIST_DATABASE_URL": ds.url}
    loyalist = Path(sys.executable).parent / "loyalist"
    return subprocess.run([str(loyalist), "ledger", "verify"], env=env, check=False).returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--members", type=int, default=200_000)
    ap.add_argument("--orders", type=int, default=2_000_000)
    ap.add_argument("--db", default=DEFAULT_DB)
    ap.add_argument("--force", action="store_true", help="regenerate even when cached")
    ap.add_argument("--verify", action="store_true", help="run `loyalist ledger verify` after")
    args = ap.parse_args()
    ds = ensure(args.members, args.orders, args.db, force=args.force)
    log(f"dataset: {ds}")
    return verify(ds) if args.verify else 0


if __name__ == "__main__":
    sys.exit(main())
