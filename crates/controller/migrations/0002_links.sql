-- Link shaping changed by the instructor while a run goes on (`applab
-- shape`): each value, when set, replaces the lab file's for that
-- attachment; NULL keeps the lab's.
CREATE TABLE link_overrides (
    run       TEXT NOT NULL,
    student   TEXT NOT NULL,
    node      TEXT NOT NULL,
    network   TEXT NOT NULL,
    delay_us  INTEGER,
    rate_bps  INTEGER,
    loss      REAL,
    PRIMARY KEY (run, student, node, network),
    FOREIGN KEY (run, student) REFERENCES students(run, id) ON DELETE CASCADE
);
