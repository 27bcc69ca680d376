"""The tables of the data, the models and production: patterns, runs, the registry,
predictions, problems, checks, the request log and monitoring (migrations 0001-0010)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from trenches.db.schema.columns import Id, metadata

datasets = Table(
    "datasets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("task", String(20), nullable=False),  # classification | regression
    Column("label_column", String(200), nullable=False),
    Column("label_type", String(20)),  # integer | number | string | boolean; set by first import
    Column("text_column", String(200)),
    # JSON list of {"name", "type"}; null until given or inferred from the first import.
    Column("input_schema", Text),
    Column("salt", String(64), nullable=False),
    Column("split_train", Float, nullable=False),
    Column("split_validation", Float, nullable=False),
    Column("split_test", Float, nullable=False),
    Column("description", Text),
    Column("created_at", BigInteger, nullable=False),
    # Regression: a prediction is right within max(abs, rel * |label|) of the label
    # (migration 0009); null when not set.
    Column("tolerance_abs", Float),
    Column("tolerance_rel", Float),
    # Whether its patterns' inputs live in its Iceberg table (patterns_<id>) rather than
    # packed in num/obj (migration 0015): true for datasets made since, and for those
    # `trenches migrate` moved.
    Column("columnar", Boolean, nullable=False, server_default=false()),
)

import_batches = Table(
    "import_batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # import | relabel
    Column("source", String(100), nullable=False),
    Column("labelled_by", String(200)),
    Column("note", Text),
    Column("file", Text),
    Column("rows", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # The ids of the patterns the batch made: consecutive, from first to last (null
    # while it made none). Which batch, so which dataset, an id is of, without a row
    # a pattern; the largest last id is where the next import's ids begin.
    Column("first_pattern_id", BigInteger),
    Column("last_pattern_id", BigInteger, index=True),
)

patterns = Table(
    "patterns",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False),
    Column("batch_id", ForeignKey("import_batches.id"), nullable=False),
    Column("source", String(100), nullable=False),
    # 0 train, 1 validation, 2 test: a function of input_key and the dataset's ratios.
    Column("split", SmallInteger, nullable=False),
    # Salted hash of the normalised inputs: decides the split, groups duplicates.
    Column("input_key", LargeBinary(16), nullable=False),
    # Hash of exact inputs, label, source and created_at: what a snapshot digest is made of.
    Column("content_hash", LargeBinary(16), nullable=False),
    Column("label", Text, nullable=False),
    # Inputs: numeric columns packed as 8-byte little-endian slots plus a missing-value
    # bitmap (see trenches.patterns.codec); string columns as a JSON array.
    Column("num", LargeBinary),
    Column("obj", Text),
    Column("tags", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("deactivated_at", BigInteger),
    Column("replaces_id", ForeignKey("patterns.id")),
    Index("ix_patterns_dataset_created", "dataset_id", "created_at"),
    Index(
        "ix_patterns_deactivated",
        "dataset_id",
        "deactivated_at",
        sqlite_where=Column("deactivated_at").isnot(None),
        postgresql_where=Column("deactivated_at").isnot(None),
    ),
    Index(
        "ix_patterns_replaces",
        "replaces_id",
        sqlite_where=Column("replaces_id").isnot(None),
        postgresql_where=Column("replaces_id").isnot(None),
    ),
    sqlite_autoincrement=True,
)

pattern_changes = Table(
    "pattern_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # Pattern ids, without a foreign key: a columnar dataset's patterns have no row.
    Column("pattern_id", Id, nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # deactivate | relabel
    Column("new_pattern_id", Id, index=True),
    Column("reason", Text, nullable=False),
    Column("changed_by", String(200)),
    Column("changed_at", BigInteger, nullable=False),
    # The pattern's dataset: a dataset's deactivations, read without its patterns.
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False),
    Index("ix_pattern_changes_dataset_pattern", "dataset_id", "pattern_id"),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False, index=True),
    Column("as_of", BigInteger, nullable=False),
    # Patterns with a larger id were imported after the snapshot was taken, even if
    # their created_at is earlier; they are never part of it.
    Column("max_pattern_id", BigInteger, nullable=False),
    Column("sources", Text),  # JSON list, or null for every source
    Column("digest", String(64), nullable=False),
    Column("patterns", BigInteger, nullable=False),
    Column("note", Text),
    Column("created_at", BigInteger, nullable=False),
    # int64 ids of the patterns held out of its training data, ascending (the patterns
    # of the problems open when it was made; migration 0009); null: none.
    Column("held_out", LargeBinary),
)

# --- runs (migration 0002) ----------------------------------------------------

artifacts = Table(
    "artifacts",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

environments = Table(
    "environments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    # SHA-256 of python, platform and packages: one row per distinct environment.
    Column("digest", String(64), nullable=False, unique=True),
    Column("python", String(100), nullable=False),
    Column("platform", String(300), nullable=False),
    Column("packages", Text, nullable=False),  # JSON {name: version}
    Column("created_at", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # running | finished | failed | killed
    Column("snapshot_id", ForeignKey("snapshots.id")),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
    Column("error", Text),
    # Who runs it: a later open on the same host marks the run killed once it is gone.
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("process_started", BigInteger),
    # Code: git_state is clean | dirty | none (not in a git work tree) | unknown.
    Column("git_state", String(20), nullable=False),
    Column("git_commit", String(64)),
    Column("git_branch", String(255)),
    Column("git_root", Text),
    Column("git_diff_sha256", ForeignKey("artifacts.sha256")),
    Column("git_tag", String(255)),
    Column("environment_id", ForeignKey("environments.id")),
    Index("ix_runs_status", "status"),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_run_params_key_value", "key", "value"),  # for search filters
)

run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

metric_points = Table(
    "metric_points",
    metadata,
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float),  # NULL is NaN: SQLite stores NaN as NULL
    Column("logged_at", BigInteger, nullable=False),
    Index("ix_metric_points_run_key_step", "run_id", "key", "step"),
)

# The value at the highest step of each metric of each run, kept on every write, so
# that searching and listing runs never scans the points.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", ForeignKey("runs.id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("value", Float),
    Column("logged_at", BigInteger, nullable=False),
    Index("ix_latest_metrics_key_value", "key", "value"),  # for search filters
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", ForeignKey("runs.id"), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("sha256", ForeignKey("artifacts.sha256"), nullable=False),
)

# --- the model registry (migration 0003) ----------------------------------------

models = Table(
    "models",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text),
    Column("created_at", BigInteger, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", ForeignKey("runs.id")),
    Column("dataset_id", ForeignKey("datasets.id")),
    Column("task", String(20)),  # classification | regression | None when unknown
    Column("flavor", String(50), nullable=False),  # sklearn | python
    # JSON: {"inputs": [{"name", "type"}], "classes": [...] | null}
    Column("signature", Text, nullable=False),
    # Why there is no ONNX form, when there is none.
    Column("onnx_error", Text),
    Column("description", Text),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("model_id", "version"),
)

model_files = Table(
    "model_files",
    metadata,
    Column("version_id", ForeignKey("model_versions.id"), primary_key=True),
    Column("format", String(20), primary_key=True),  # skops | onnx | pickle
    Column("sha256", ForeignKey("artifacts.sha256"), nullable=False),
    # JSON. skops: the names skops does not trust by default that the file holds, split
    # into "trusted_types" (on trenches' fixed list) and "needs_trust" (they force
    # trusted=True), for display only: loading checks the file's own names against the
    # fixed list (models.trust), never this column.
    # onnx: "round_inputs", feed single-precision-rounded input (see models.formats).
    Column("details", Text),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", ForeignKey("models.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("alias", String(100), nullable=False),
    Column("from_version_id", ForeignKey("model_versions.id")),
    Column("to_version_id", ForeignKey("model_versions.id")),
    Column("moved_by", String(200)),
    Column("reason", Text, nullable=False),
    Column("forced", Boolean, nullable=False),
    Column("moved_at", BigInteger, nullable=False),
)

# --- predictors, baselines and predictions (migration 0004) ---------------------

baselines = Table(
    "baselines",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False),
    Column("description", Text),
    Column("created_at", BigInteger, nullable=False),
)

# Whatever makes predictions: a model version or a baseline. Predictions are keyed by
# predictor, so both are compared the same way.
predictors = Table(
    "predictors",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),  # version | baseline
    Column("version_id", ForeignKey("model_versions.id"), unique=True),
    Column("baseline_id", ForeignKey("baselines.id"), unique=True),
    # JSON list: the class order of ``predictions.scores``; null for regression.
    Column("classes", Text),
    Column("created_at", BigInteger, nullable=False),
)

# Predictions are stored in blocks: the predictions of one predictor written together,
# as NumPy arrays (little-endian), one row a block. A block of 100,000 predictions is
# one insert, and everything a comparison needs is read back as arrays.
prediction_blocks = Table(
    "prediction_blocks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("predictor_id", ForeignKey("predictors.id"), nullable=False, index=True),
    Column("n", Integer, nullable=False),
    Column("pattern_ids", LargeBinary, nullable=False),  # int64, ascending
    # classification: int32 index into the predictor's classes; regression: null.
    Column("label_index", LargeBinary),
    Column("value", LargeBinary),  # regression: float64
    Column("scores", LargeBinary),  # float64, n x len(classes), or null
    Column("correct", LargeBinary),  # uint8 (0/1) for classification
    Column("loss", LargeBinary),  # float64; NaN where there is none
    Column("created_at", BigInteger, nullable=False),
)

# --- the problem database (migration 0005) ------------------------------------------

problems = Table(
    "problems",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False),
    Column("title", String(300), nullable=False),
    Column("description", Text),
    Column("severity", String(20), nullable=False),  # low | medium | high | critical
    Column("status", String(20), nullable=False),  # open | closed
    Column("created_at", BigInteger, nullable=False),
    Column("closed_at", BigInteger),
    Column("close_reason", Text),
    # The dataset's regression tolerance, overridden for this problem (migration 0009).
    Column("tolerance_abs", Float),
    Column("tolerance_rel", Float),
    # Whether new snapshots may train on its patterns (else they are held out).
    Column("trainable", Boolean, nullable=False, server_default=false()),
)

problem_patterns = Table(
    "problem_patterns",
    metadata,
    Column("problem_id", ForeignKey("problems.id"), primary_key=True),
    Column("pattern_id", Id, primary_key=True),  # no foreign key: see pattern_changes
    Column("polarity", String(10), nullable=False),  # positive | negative
    Column("added_at", BigInteger, nullable=False),
)

# --- gate checks and explanations (migration 0006) --------------------------------

# One row per `trenches check`: the criteria as checked (and their digest, so a check
# against criteria that have since changed is seen), every gate's figure and verdict.
checks = Table(
    "checks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("criteria_digest", String(64), nullable=False),
    Column("criteria", Text, nullable=False),  # JSON: the gates as written in trenches.toml
    Column("source", Text),  # the trenches.toml checked against
    Column("passed", Boolean, nullable=False),
    Column("results", Text, nullable=False),  # JSON list: one object per gate
    Column("checked_by", String(200)),
    Column("created_at", BigInteger, nullable=False),
)

# One explanation of one model version's prediction on one pattern, per method and
# settings (seed, samples, features): explanations are reproducible, so stored once.
explanations = Table(
    "explanations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False),
    Column("pattern_id", Id, nullable=False, index=True),  # no foreign key: see pattern_changes
    Column("method", String(40), nullable=False),  # lime-tabular | lime-text
    Column("settings_digest", String(64), nullable=False),
    Column("settings", Text, nullable=False),  # JSON: seed, num_samples, num_features, ...
    Column("label", Text),  # the class explained, as text; null for regression
    # JSON: {"prediction", "probability", "intercept", "local_prediction", "score",
    #        "weights": [{"feature", "condition", "weight"}, ...] by |weight| descending}
    Column("body", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint(
        "version_id",
        "pattern_id",
        "method",
        "settings_digest",
        name="uq_explanations_version_pattern_method_settings",
    ),
)

# --- serving: the request log and feedback (migration 0007) -----------------------

# One row per served request (one or many input rows), written off the request path
# in batches. Inputs and outputs are JSON: {"columns": [...], "data": [[...], ...]} and
# {"labels": [...], "scores": [[...]] | null, "values": [...] | null}, until they are
# moved into the request log's Iceberg tables (trenches.requests.stored; migration
# 0016): then both are null, and the rows that still hold them are the staged ones.
served_requests = Table(
    "served_requests",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("endpoint", String(40), nullable=False),  # v2 | invocations | predict
    Column("n", Integer, nullable=False),  # input rows
    Column("inputs", Text),
    Column("outputs", Text),
    Column("latency_us", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False, index=True),
    # Under a traffic policy (migration 0019): the policy, and the arm that answered;
    # a version answering in another's shadow has a row of its own, ``shadow_of`` the
    # request id the caller got.
    Column("policy_id", Id),  # no foreign key: the log is written in bulk
    Column("arm", String(80)),
    Column("shadow_of", String(64)),
    Index(
        "ix_served_requests_staged",
        "id",
        sqlite_where=Column("inputs").isnot(None),
        postgresql_where=Column("inputs").isnot(None),
    ),
    # Only requests under a policy: the others cost an insert nothing here.
    Index(
        "ix_served_requests_policy_id",
        "policy_id",
        sqlite_where=Column("policy_id").isnot(None),
        postgresql_where=Column("policy_id").isnot(None),
    ),
)

# A true label or a rating for one row of a served request, posted later. No foreign
# key to served_requests: feedback can arrive while its request is still on its way
# to the store.
feedback = Table(
    "feedback",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("request_id", String(64), nullable=False, index=True),
    Column("row", Integer, nullable=False),
    Column("label", Text),  # JSON value
    Column("rating", Float),
    Column("comment", Text),
    Column("created_at", BigInteger, nullable=False, index=True),
    # Whether the label is the class the request was answered with (1 or 0), when a
    # label was given for a classifier's answer (migration 0019): what a bandit and a
    # guard count.
    Column("correct", SmallInteger),
    # The pattern this feedback became (trenches requests to-patterns), once it has.
    Column("pattern_id", Id),  # no foreign key: see pattern_changes
)

# --- traffic policies (migration 0019) -------------------------------------------

# How a model's traffic is shared between its versions, each change a row: the model's
# policy is its newest row. ``arms`` is JSON: [{"name", "version_id" (null: the version
# the server serves), "weight"}]. See trenches.traffic.
traffic_policies = Table(
    "traffic_policies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
    Column("kind", String(20), nullable=False),  # off | shadow | canary | ab | bandit
    Column("arms", Text, nullable=False),
    Column("floor", Float, nullable=False),  # bandit: the least share of each arm
    Column("rating_max", Float),  # bandit: a rating's best value (reward = rating / it)
    Column("reason", Text, nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# A candidate replayed on the request log (migration 0020): its answers to the rows
# callers asked in a window, against what they were answered. Its answers themselves
# are in the table replay_rows_<version id> (trenches.traffic.replay); ``detail`` is
# JSON: the flips and the figures per problem.
replays = Table(
    "replays",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("since", BigInteger),  # µs; null: from the first request
    Column("until", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("predicted", Integer, nullable=False),  # rows predicted by this replay
    Column("agreed", Integer, nullable=False),
    Column("labelled", Integer, nullable=False),  # rows with a feedback label
    Column("candidate_right", Integer, nullable=False),
    Column("production_right", Integer, nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("seconds", Float, nullable=False),
)

# --- monitoring: drift reports, alerts, retraining (migration 0008) ---------------

# One drift report: a window of production inputs (served requests, or a file) against
# a reference (by default the training split of the served version's snapshot).
drift_reports = Table(
    "drift_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("version_id", ForeignKey("model_versions.id"), nullable=False, index=True),
    Column("reference", Text, nullable=False),  # what the reference was, in words
    Column("reference_rows", Integer, nullable=False),
    Column("current", Text, nullable=False),  # what the window was, in words
    Column("current_rows", Integer, nullable=False),
    Column("since", BigInteger),  # the window of requests, when it was one
    Column("until", BigInteger),
    Column("drifted", Boolean, nullable=False),
    Column("drifted_columns", Integer, nullable=False),
    Column("settings", Text, nullable=False),  # JSON: the thresholds applied
    # JSON: {"columns": [...], "prediction": {...} | null, "metrics": {...} | null}
    Column("body", Text, nullable=False),
    Column("created_by", String(200)),
    Column("created_at", BigInteger, nullable=False, index=True),
)

# What a drift report raised: the message, and whether the webhook took it.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("report_id", ForeignKey("drift_reports.id"), nullable=False, index=True),
    Column("message", Text, nullable=False),
    Column("webhook", Text),  # the URL it was posted to, if any
    Column("delivered", Boolean),  # null: no webhook
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("created_at", BigInteger, nullable=False),
)

# One pass of the continuous-training loop: what set it off (a drift report, or a
# person), the snapshot, run and candidate it made, the check, and the decision.
retrains = Table(
    "retrains",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False, index=True),
    Column("report_id", ForeignKey("drift_reports.id")),
    Column("snapshot_id", ForeignKey("snapshots.id")),
    Column("run_id", ForeignKey("runs.id")),
    Column("version_id", ForeignKey("model_versions.id")),
    Column("production_id", ForeignKey("model_versions.id")),
    Column("check_id", ForeignKey("checks.id")),
    # running | promoted | candidate | failed
    Column("status", String(20), nullable=False),
    Column("reason", Text),
    Column("body", Text),  # JSON: settings, the comparison with production
    Column("started_by", String(200)),
    Column("started_at", BigInteger, nullable=False),
    Column("ended_at", BigInteger),
)
