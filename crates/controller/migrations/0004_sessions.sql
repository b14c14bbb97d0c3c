-- Panel sessions (DESIGN.md decision 13): one row per logged-in browser.
-- The cookie holds a random id; only its SHA-256 is stored, so a copy of
-- the database logs nobody in.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    -- 'student' now; 'instructor' and 'assistant' join them later.
    role        TEXT NOT NULL,
    -- The student's id (or the staff account's name).
    subject     TEXT NOT NULL,
    -- The run the session works in; NULL while a student in several runs
    -- has not picked one.
    run         TEXT,
    -- JSON list of the runs these credentials opened.
    runs        TEXT NOT NULL,
    -- The token every state-changing form and request carries.
    csrf        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    last_seen   REAL NOT NULL
);
CREATE INDEX sessions_subject ON sessions (role, subject);
