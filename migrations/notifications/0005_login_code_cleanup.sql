-- Codes and links live minutes: the service deletes rows a day old as it adds new ones.
grant delete on login_codes to era_notifications_service;
