-- The database floor of GET /v1/members/{id} (issue 11): the SELECTs one member read issues
-- (the API key's revocation check, then in one read-only transaction the member with the
-- balance of the account they draw on, the active programme version (with the latest fraud
-- document's version and checksum, read in the same statement since session 9), the tier qualifying
-- spend, the points expiring in 30 days, and identities, tags and consents together), with
-- the same columns and predicates, on a copy of the bench database, run by pgbench:
--   pgbench -n -f benchmarks/read_floor.sql -D members=N -c 16 -j 2 -T 10 <copy of the bench db>
-- tests/integration/member/test_read_floor.py keeps these statements in step with the ones a
-- member read really issues (same tables, same number of statements); change both together.
-- Accounts: bench_redeem_read checks that account ids equal member ids in the bench database.
\set m random(1, :members)
SELECT api_key.revoked_at FROM api_key WHERE api_key.id = 1;
BEGIN;
SELECT member.id, member.member_no, member.external_id, member.phone, member.email, member.name, member.birthday, member.gender, member.city, member.home_store_id, member.join_channel, member.status, member.tier_code, member.tier_since, member.tier_expires_at, member.created_at, member.org_path, points_account.id AS account_id, points_account.available, points_account.pending, points_account.debt, points_account.lifetime_earned FROM member LEFT OUTER JOIN points_account_member ON points_account_member.member_id = member.id AND points_account_member.left_at IS NULL LEFT OUTER JOIN points_account ON points_account.id = points_account_member.account_id WHERE member.id = :m;
SELECT programme_version.version, programme_version.checksum, programme_version.created_at, (SELECT config_document.version FROM config_document WHERE config_document.kind = 'fraud' ORDER BY config_document.version DESC LIMIT 1) AS anon_1, (SELECT config_document.checksum FROM config_document WHERE config_document.kind = 'fraud' ORDER BY config_document.version DESC LIMIT 1) AS anon_2 FROM programme_version ORDER BY programme_version.version DESC LIMIT 1;
SELECT coalesce(sum(orders.qualifying_minor - orders.qualifying_refunded_minor), 0) AS coalesce_1 FROM orders WHERE orders.member_id = :m AND orders.occurred_at >= now() - interval '1 year' AND orders.occurred_at <= now();
SELECT points_lot.expires_at, points_lot.status, sum(points_lot.remaining) AS sum_1 FROM points_lot WHERE points_lot.account_id = :m AND points_lot.status IN ('available', 'pending') AND points_lot.remaining > 0 AND points_lot.expires_at > now() AND points_lot.expires_at <= now() + interval '30 days' GROUP BY points_lot.expires_at, points_lot.status ORDER BY points_lot.expires_at;
SELECT 'i' AS src, member_identity.kind AS k, member_identity.value AS v, CAST(NULL AS BOOLEAN) AS g FROM member_identity WHERE member_identity.member_id = :m UNION ALL SELECT 't', member_tag.tag, NULL, NULL FROM member_tag WHERE member_tag.member_id = :m UNION ALL SELECT 'c', member_consent.channel, NULL, member_consent.granted FROM member_consent WHERE member_consent.member_id = :m ORDER BY src, k;
COMMIT;
