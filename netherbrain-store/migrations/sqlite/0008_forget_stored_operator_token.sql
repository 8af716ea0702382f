-- Version 8: the operator token (NETHER_AUTH_TOKEN) is no longer stored.
-- Earlier versions kept it as the admin's `bootstrap` API key: an unsalted
-- SHA-256 with a `t-` prefix derived from it, shown by `keys/list`. The
-- token still authenticates by comparison with the configured value, so
-- the stored copy is dropped. Generated keys (`nb_<prefix>_…`) never have
-- a `t-` prefix and stay.
DELETE FROM api_keys WHERE name = 'bootstrap' AND prefix LIKE 't-%';
