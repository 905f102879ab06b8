#!/bin/sh
# create databases based on a user:password
# flat file. Databases are named <username>_db
set -e
export PGPASSWORD=$POSTGRES_PASSWORD

while read line; do                 # for each line
  if [ "$line" != "" ]; then
   export username="${line%%:*}"      # characters before ':' are the username
   export password="${line#*:}"       # characters after ':' are the password
   export db_name="${username}_db"    # database is named after the username

   psql --host localhost --port 5432 --username "$POSTGRES_USER" <<EOF
   SELECT 'CREATE DATABASE $db_name'
   WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$db_name')\gexec
   
   DO
    \$do\$
    BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '$username') THEN
      RAISE NOTICE 'Role $username already exists. Updating his password';
      ALTER USER $username ENCRYPTED PASSWORD '$password';
     ELSE
       CREATE USER $username WITH ENCRYPTED PASSWORD '$password';
       GRANT ALL PRIVILEGES ON DATABASE $db_name TO $username;
       GRANT CREATE ON SCHEMA public TO $username;
       ALTER DATABASE $db_name OWNER TO $username;
    END IF;
    END
    \$do\$;
EOF
fi
done<$DBUSERS
