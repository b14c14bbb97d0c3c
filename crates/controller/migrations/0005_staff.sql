-- Instructor and assistant accounts for the panel (issue 15). Passwords
-- are argon2id PHC strings, as the students' are.
CREATE TABLE staff (
    name          TEXT PRIMARY KEY,
    -- 'instructor' (everything) or 'assistant' (sees everything, may reset
    -- students and stop/start nodes; may not launch, tear down or export).
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
