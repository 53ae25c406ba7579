-- One database per service (ARCHITECTURE.md "Data").
create database era_canvas;
create database era_payments;
create database era_pharmacy_routing;
create database era_scheduling;
create database era_notifications;
create database era_edge;
