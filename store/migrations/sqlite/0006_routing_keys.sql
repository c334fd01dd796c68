-- Routing keys address uplinks (`/api/v1/integrations/{type}/{routingKey}`): unique, decided by
-- the database like on PostgreSQL (where several instances share it).
CREATE UNIQUE INDEX owners_routing_key ON owners (json_extract(body, '$.routingKey')) WHERE type = 'INTEGRATION';
