-- Run once by the postgres image, on its first start with an empty volume
-- (/docker-entrypoint-initdb.d), as the superuser POSTGRES_USER.
-- One database per kind of process: the gateways share `gateway` (their saga
-- records), the replicas of one registry share that registry's database.
-- tests/deploy/test_compose.py checks that every *_DB URL in
-- docker-compose.yml names one of these.
CREATE DATABASE gateway;
CREATE DATABASE population;
CREATE DATABASE insurance;
CREATE DATABASE health;
