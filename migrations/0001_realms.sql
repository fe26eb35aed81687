-- The realms themselves. The hub is the first deployment; worker instances are added later,
-- each generating its own ids, which is why every other table keys on (id, realm_id).
CREATE TABLE realms (
    id         text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]*$'),
    name       text NOT NULL,
    kind       text NOT NULL DEFAULT 'worker' CHECK (kind IN ('hub', 'worker')),
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO realms (id, name, kind) VALUES ('hub', 'Hub', 'hub');
