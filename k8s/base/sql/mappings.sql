-- Hazelcast SQL mappings for the fraud-detection maps, run by the Job fraud-sql-mappings
-- (deploy/apply_sql.py: one `fraud sql` call per statement). CREATE OR REPLACE: idempotent.
-- Mappings live in the cluster's memory: if every Hazelcast member restarts they are gone;
-- re-run the Job (the service also recreates the mappings it uses).

-- predictionResult: key = transaction number, value = JSON with the old system's field names
-- (analysts' SQL keeps working) plus model_version, customer_known, merchant_known and the top
-- three feature contributions of flagged transactions (DESIGN.md, "Data contracts").
CREATE OR REPLACE MAPPING predictionResult (
    __key VARCHAR,
    transaction_number VARCHAR,
    transaction_date VARCHAR,
    timestamp_ms BIGINT,
    amount DOUBLE,
    merchant VARCHAR,
    merchant_lat DOUBLE,
    merchant_lon DOUBLE,
    credit_card_number VARCHAR,
    customer_name VARCHAR,
    customer_city VARCHAR,
    customer_age_group VARCHAR,
    customer_gender VARCHAR,
    customer_lat DOUBLE,
    customer_lon DOUBLE,
    distance_from_home DOUBLE,
    transactions_last_24_hours BIGINT,
    transactions_last_week BIGINT,
    amount_spent_last_24_hours DOUBLE,
    fraud_probability DOUBLE,
    fraud_model_prediction INT,
    inference_time_ns BIGINT,
    model_version VARCHAR,
    customer_known BOOLEAN,
    merchant_known BOOLEAN,
    top_feature_1 VARCHAR,
    top_contribution_1 DOUBLE,
    top_feature_2 VARCHAR,
    top_contribution_2 DOUBLE,
    top_feature_3 VARCHAR,
    top_contribution_3 DOUBLE
)
TYPE IMap
OPTIONS (
    'keyFormat' = 'varchar',
    'valueFormat' = 'json-flat'
);

-- customers: key = card number; value = the card holder's columns of the fraudTrain.csv schema.
CREATE OR REPLACE MAPPING customers (
    __key VARCHAR,
    cc_num VARCHAR,
    "first" VARCHAR,
    "last" VARCHAR,
    gender VARCHAR,
    street VARCHAR,
    city VARCHAR,
    state VARCHAR,
    zip VARCHAR,
    lat DOUBLE,
    "long" DOUBLE,
    city_pop BIGINT,
    job VARCHAR,
    dob VARCHAR
)
TYPE IMap
OPTIONS (
    'keyFormat' = 'varchar',
    'valueFormat' = 'json-flat'
);

-- merchants: key = merchant name; value = its columns of the fraudTrain.csv schema.
CREATE OR REPLACE MAPPING merchants (
    __key VARCHAR,
    merchant VARCHAR,
    category VARCHAR
)
TYPE IMap
OPTIONS (
    'keyFormat' = 'varchar',
    'valueFormat' = 'json-flat'
);
