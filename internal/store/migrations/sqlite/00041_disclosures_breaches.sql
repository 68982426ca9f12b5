-- +goose Up
-- disclosures: the register of disclosures to authorities (P-SHARE-3). A disclosure
-- names the authority, the legal basis, the data categories and when; its document (the
-- order or request received) is an object of the blob store, sealed under the
-- disclosure's own data key (vault subject = the disclosure's id), as is the reason
-- members are not told yet (withheld_reason, with the review date). members is how many
-- members it concerned when recorded: the register keeps the figure when a member's
-- link goes with their erasure.
CREATE TABLE disclosures (
    id              TEXT PRIMARY KEY,
    authority       TEXT NOT NULL,
    legal_basis     TEXT NOT NULL,
    categories      TEXT NOT NULL,
    disclosed_at    BIGINT NOT NULL,
    document_object TEXT NOT NULL,
    document_type   TEXT NOT NULL,
    document_size   BIGINT NOT NULL,
    withheld_reason TEXT,
    review_at       BIGINT,
    lifted_at       BIGINT,
    lifted_by       TEXT,
    recorded_by     TEXT,
    recorded_at     BIGINT NOT NULL,
    members         BIGINT NOT NULL
);
-- One row per member a disclosure concerned: what was disclosed of them (detail,
-- sealed under the member's data key) and when they were told (NULL: not yet).
CREATE TABLE disclosure_subjects (
    disclosure_id TEXT NOT NULL REFERENCES disclosures(id),
    subject_id    TEXT NOT NULL,
    detail        TEXT NOT NULL,
    told_at       BIGINT,
    PRIMARY KEY (disclosure_id, subject_id)
);
CREATE INDEX disclosure_subjects_subject ON disclosure_subjects(subject_id);

-- breaches: the register of personal data breaches (GDPR art. 33 and 34): what
-- happened, when it was discovered (the 72-hour clock to the authority runs from
-- there), the categories, likely consequences and measures, and the report to the
-- authority. affected counts the members selected, kept when a member's link goes with
-- their erasure.
CREATE TABLE breaches (
    id               TEXT PRIMARY KEY,
    description      TEXT NOT NULL,
    discovered_at    BIGINT NOT NULL,
    categories       TEXT NOT NULL,
    consequences     TEXT NOT NULL,
    measures         TEXT NOT NULL,
    recorded_by      TEXT,
    recorded_at      BIGINT NOT NULL,
    reported_at      BIGINT,
    report_reference TEXT,
    delay_reason     TEXT,
    reported_by      TEXT,
    affected         BIGINT NOT NULL DEFAULT 0
);
-- One row per member a breach affects, and when the notice to them was queued (NULL:
-- not yet): a second send skips those already notified.
CREATE TABLE breach_subjects (
    breach_id   TEXT NOT NULL REFERENCES breaches(id),
    subject_id  TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    notified_at BIGINT,
    PRIMARY KEY (breach_id, subject_id)
);
CREATE INDEX breach_subjects_subject ON breach_subjects(subject_id);

-- +goose Down
DROP TABLE breach_subjects;
DROP TABLE breaches;
DROP TABLE disclosure_subjects;
DROP TABLE disclosures;
