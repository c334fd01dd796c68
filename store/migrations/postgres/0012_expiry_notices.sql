-- Where a tenant wants to hear of secrets about to expire: {"ruleChainId", "daysBefore": [30, 7, 1]}
-- as JSON; NULL: nowhere.
ALTER TABLE tenants ADD COLUMN expiry_notices text;
