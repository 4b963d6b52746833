-- Feast's SQL registry (production profile) gets its own database beside Airflow's.
CREATE DATABASE feast OWNER airflow;
