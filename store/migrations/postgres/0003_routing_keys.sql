-- Routing keys address uplinks (`/api/v1/integrations/{type}/{routingKey}`): unique across every
-- instance, so the database decides when two instances accept the same key at once.
CREATE UNIQUE INDEX owners_routing_key ON owners (((body::jsonb) ->> 'routingKey')) WHERE type = 'INTEGRATION';
