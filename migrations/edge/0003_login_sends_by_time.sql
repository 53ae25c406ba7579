-- Each send trims rows a day old; this keeps that delete from scanning the table.
create index login_sends_by_time on login_sends (sent_at);
