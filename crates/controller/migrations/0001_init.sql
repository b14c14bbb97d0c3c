-- Desired state. Actual state lives in the engine's labels.
CREATE TABLE runs (
    name        TEXT PRIMARY KEY,
    lab_name    TEXT NOT NULL,
    -- The lab folder snapshot this run was launched from (under the data dir).
    lab_dir     TEXT NOT NULL,
    -- Key of the per-student parameters (HMAC); never leaves the controller.
    secret      BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE students (
    run           TEXT NOT NULL REFERENCES runs(name) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    issued_at     INTEGER NOT NULL,
    -- Bumped by reset: objects labelled with an older generation are replaced.
    generation    INTEGER NOT NULL DEFAULT 1,
    added_at      INTEGER NOT NULL,
    PRIMARY KEY (run, id)
);

-- Nodes the instructor stopped on purpose (the SMTP lab's dead server).
CREATE TABLE stopped_nodes (
    run      TEXT NOT NULL,
    student  TEXT NOT NULL,
    node     TEXT NOT NULL,
    PRIMARY KEY (run, student, node),
    FOREIGN KEY (run, student) REFERENCES students(run, id) ON DELETE CASCADE
);

-- Subnets handed out from the pool; a subnet belongs to one student network.
CREATE TABLE subnets (
    subnet   TEXT PRIMARY KEY,
    idx      INTEGER NOT NULL UNIQUE,
    run      TEXT NOT NULL,
    student  TEXT NOT NULL,
    network  TEXT NOT NULL,
    UNIQUE (run, student, network),
    FOREIGN KEY (run, student) REFERENCES students(run, id) ON DELETE CASCADE
);
