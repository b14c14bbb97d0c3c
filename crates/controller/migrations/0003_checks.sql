-- The check engine's results (DESIGN.md decision 12): one row per check of
-- each student, the latest verdict with what was expected and seen and the
-- evidence (JSON), and when it first passed. A result that passed stays
-- passed (only `applab check --recheck` recomputes it).
CREATE TABLE results (
    run             TEXT NOT NULL,
    student         TEXT NOT NULL,
    task            TEXT NOT NULL,
    check_id        TEXT NOT NULL,
    status          TEXT NOT NULL,
    expected        TEXT NOT NULL,
    seen            TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    first_passed_at REAL,
    updated_at      REAL NOT NULL,
    -- How many times the verdict changed.
    changes         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run, student, task, check_id),
    FOREIGN KEY (run, student) REFERENCES students(run, id) ON DELETE CASCADE
);

-- Every change of a verdict, for the student's and the instructor's history.
CREATE TABLE result_history (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    run      TEXT NOT NULL,
    student  TEXT NOT NULL,
    task     TEXT NOT NULL,
    check_id TEXT NOT NULL,
    status   TEXT NOT NULL,
    seen     TEXT NOT NULL,
    at       REAL NOT NULL,
    -- The capture time of the latest event the verdict cites (NULL when
    -- only probes or answers decided it): `at` minus this is how long the
    -- check engine took.
    decided_at REAL,
    FOREIGN KEY (run, student) REFERENCES students(run, id) ON DELETE CASCADE
);

-- Every answer a student submitted; the latest of each question is judged.
CREATE TABLE submissions (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    run      TEXT NOT NULL,
    student  TEXT NOT NULL,
    task     TEXT NOT NULL,
    question TEXT NOT NULL,
    value    TEXT NOT NULL,
    at       REAL NOT NULL,
    FOREIGN KEY (run, student) REFERENCES students(run, id) ON DELETE CASCADE
);
CREATE INDEX submissions_by_student ON submissions (run, student);
