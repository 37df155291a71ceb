-- The database floor of GET /v1/members/{id} (issue 11): the SELECTs one member read issues
-- (the API key's revocation check, then in one read-only transaction the member, the active
-- programme version, the member's account and its balance, the tier qualifying spend, the
-- points expiring in 30 days, tags, consents, identities), with the same columns and
-- predicates, on a copy of the bench database, run by pgbench:
--   pgbench -n -f benchmarks/read_floor.sql -D members=N -c 16 -j 2 -T 10 <copy of the bench db>
-- tests/integration/member/test_read_floor.py keeps these statements in step with the ones a
-- member read really issues (same tables, same number of statements); change both together.
-- Accounts: bench_redeem_read checks that account ids equal member ids in the bench database.
\set m random(1, :members)
SELECT api_key.revoked_at FROM api_key WHERE api_key.id = 1;
BEGIN;
SELECT member.id, member.member_no, member.external_id, member.phone, member.email, member.name, member.birthday, member.phone_bidx, member.email_bidx, member.name_bidx, member.gender, member.city, member.home_store_id, member.org_path, member.join_channel, member.status, member.tier_code, member.tier_since, member.tier_expires_at, member.tier_periods_below, member.tier_evaluated_period, member.created_at, member.updated_at, member.referral_code, member.erased_at FROM member WHERE member.id = :m;
SELECT programme_version.version, programme_version.checksum, programme_version.created_at FROM programme_version ORDER BY programme_version.version DESC LIMIT 1;
SELECT points_account_member.id, points_account_member.account_id, points_account_member.member_id, points_account_member.role, points_account_member.can_spend, points_account_member.joined_at, points_account_member.left_at, points_account_member.added_by, points_account_member.removed_by FROM points_account_member WHERE points_account_member.member_id = :m AND points_account_member.left_at IS NULL;
SELECT points_account.id, points_account.owner_member_id, points_account.available, points_account.pending, points_account.debt, points_account.lifetime_earned, points_account.chain_seq, points_account.chain_head, points_account.created_at, points_account.updated_at FROM points_account WHERE points_account.id = :m;
SELECT coalesce(sum(orders.qualifying_minor - orders.qualifying_refunded_minor), 0) AS coalesce_1 FROM orders WHERE orders.member_id = :m AND orders.occurred_at >= now() - interval '1 year' AND orders.occurred_at <= now();
SELECT points_lot.expires_at, points_lot.status, sum(points_lot.remaining) AS sum_1 FROM points_lot WHERE points_lot.account_id = :m AND points_lot.status IN ('available', 'pending') AND points_lot.remaining > 0 AND points_lot.expires_at > now() AND points_lot.expires_at <= now() + interval '30 days' GROUP BY points_lot.expires_at, points_lot.status ORDER BY points_lot.expires_at;
SELECT member_tag.tag FROM member_tag WHERE member_tag.member_id = :m ORDER BY member_tag.tag;
SELECT member_consent.channel, member_consent.granted FROM member_consent WHERE member_consent.member_id = :m;
SELECT member_identity.kind, member_identity.value FROM member_identity WHERE member_identity.member_id = :m;
COMMIT;
