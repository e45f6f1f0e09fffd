"""What every service repeats once: settings, app factory, database, backbone wiring, admin key."""
