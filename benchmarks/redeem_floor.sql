-- The database floor of POST /v1/redemptions (issue 11): the INSERT and UPDATE statements
-- one redemption of bench_redeem_read's reward (``upsize``, points only, no stock, a member
-- who redeemed it before) issues, in the same order and with the same row sizes, on a copy of
-- the bench database (every index, unique constraint and foreign key), run by pgbench:
--   pgbench -n -f benchmarks/redeem_floor.sql -D members=N -D reward=R -c 16 -j 2 -T 10 <db>
-- The entry, its allocation and lot, the redemption and the audit row are Core statements;
-- the two events one multi-row INSERT; the account (balance, chain head) is updated once,
-- by the flush before the answer is stored (redeemlean, issue 11).
-- Only writes (and the outbox's position lock, and the redemption's id taken from its
-- sequence first, as the server takes it with its code check, so that the ledger entry is
-- inserted once with its source and dedupe key): the other SELECTs the server issues (the
-- key, the member, the programme, the reward, the account lock, the membership, the freeze,
-- the fraud settings, the lots) are its own work, which the ratio measures.
-- tests/integration/redemption/test_redeem_floor.py keeps these statements in step with the
-- ones a redemption really issues (same tables, same columns, same number); change both.
-- Accounts and lots: bench_redeem_read checks that account ids and lot ids equal member ids.
\set m random(1, :members)
\set x random(1, 9000000000000000)
BEGIN;
INSERT INTO idempotency_record (principal, key, method, path, fingerprint, status_code, response, created_at) VALUES ('key:1', md5(:client_id || '-' || :x), 'POST', '/v1/redemptions', md5(:x || 'a') || md5(:x || 'b'), 0, '{}', now()) ON CONFLICT (principal, key) DO NOTHING RETURNING id AS idem \gset
UPDATE reward_usage SET used = used + 1 WHERE reward_usage.member_id = :m AND reward_usage.reward_id = :reward;
SELECT nextval(pg_get_serial_sequence('redemption', 'id')) AS r \gset
INSERT INTO ledger_entry (account_id, member_id, kind, delta_available, delta_pending, delta_debt, source_type, source_id, actor, reason, corrects_entry_id, programme_version, details, dedupe_key, occurred_at, created_at, chain_seq, prev_hash, entry_hash) VALUES (:m, :m, 'redeem', -500, 0, 0, 'redemption', :r, 'apikey:lk_bench000', 'redeemed 1 × 免费升杯', NULL, 1, ('{"lots": [[' || :m || ', 500]]}')::json, 'redemption:' || :r || ':redeem', now(), now(), :x, repeat('a', 64), repeat('b', 64)) RETURNING id AS e \gset
INSERT INTO lot_allocation (entry_id, lot_id, points) VALUES (:e, :m, -500);
UPDATE points_lot SET remaining = remaining - 500 WHERE points_lot.id = :m;
INSERT INTO redemption (id, member_id, reward_id, store_id, org_path, quantity, points, cash_minor, currency, status, entry_id, cancel_entry_id, cancel_reason, created_at, cancelled_at, code, expires_at, collected_at, collected_by, quote_id, pricing) VALUES (:r, :m, :reward, NULL, '/1/', 1, 500, 0, 'CNY', 'completed', :e, NULL, NULL, now(), NULL, upper(substr(md5(:client_id || 'c' || :x), 1, 12)), NULL, NULL, NULL, NULL, 'null');
INSERT INTO audit_log (actor, principal, action, object_type, object_id, before, after, org_path, occurred_at) VALUES ('apikey:lk_bench000', 'key:1', 'redemption.create', 'redemption', :r, NULL, '{"member_id": 185, "reward": "upsize", "quantity": 1, "points": 500, "status": "completed"}', '/1/', now());
WITH ev AS (INSERT INTO outbox_event (event_id, type, schema_version, member_id, org_path, payload, occurred_at, dispatched_at, position) VALUES (gen_random_uuid()::text, 'points.redeemed', 1, :m, '/1/', '{"member_id": 185, "entry_id": 774, "points": 500, "kind": "redeem", "available": 992000, "pending": 0, "account_id": 185}', now(), NULL, NULL), (gen_random_uuid()::text, 'redemption.created', 1, :m, '/1/', '{"redemption_id": 774, "member_id": 185, "reward": "upsize", "quantity": 1, "points": 500, "cash_minor": 0}', now(), NULL, NULL) RETURNING id) SELECT min(id) AS ev1, max(id) AS ev2 FROM ev \gset
UPDATE points_account SET available = available - 500, chain_seq = chain_seq + 1, chain_head = repeat('c', 64), updated_at = now() WHERE points_account.id = :m;
UPDATE idempotency_record SET status_code = 201, response = '{"sealed": "enc:k0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}' WHERE idempotency_record.id = :idem;
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(327748763980);
UPDATE outbox_event SET position = anon_1.position FROM (SELECT outbox_event.id AS id, (SELECT coalesce(max(placed.position), 0) FROM outbox_event AS placed) + row_number() OVER (ORDER BY outbox_event.id) AS position FROM outbox_event WHERE outbox_event.position IS NULL ORDER BY outbox_event.id LIMIT 10000) AS anon_1 WHERE outbox_event.id = anon_1.id;
NOTIFY loyalist_wake;
COMMIT;
