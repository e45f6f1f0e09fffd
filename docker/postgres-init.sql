-- Run once by the postgres image, on an empty data volume, as POSTGRES_USER (who owns them):
-- one database per service, named as in the services' SPINE_<SERVICE>_DATABASE_URL.
CREATE DATABASE support;
CREATE DATABASE recommender;
CREATE DATABASE sentiment;
