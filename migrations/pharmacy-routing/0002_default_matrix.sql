-- ============================================================================================
-- CONFIGURATION, NOT FACT. The spec says GMP (PioneerRx) serves "18 states" without listing them,
-- and gives no licence numbers or expiry dates. The 18 states, licence numbers and dates below are
-- a placeholder default for the clinic to replace with its real licence matrix (through
-- PUT /api/admin/routing/{state}, which audits each change, or a migration of its own).
-- The excluded states (MN, CA, TX, AR, NC, OK) and the two prescribers come from the spec.
-- ============================================================================================

insert into jurisdictions (code, name) values
    ('AL', 'Alabama'), ('AK', 'Alaska'), ('AZ', 'Arizona'), ('AR', 'Arkansas'), ('CA', 'California'),
    ('CO', 'Colorado'), ('CT', 'Connecticut'), ('DE', 'Delaware'), ('DC', 'District of Columbia'),
    ('FL', 'Florida'), ('GA', 'Georgia'), ('HI', 'Hawaii'), ('ID', 'Idaho'), ('IL', 'Illinois'),
    ('IN', 'Indiana'), ('IA', 'Iowa'), ('KS', 'Kansas'), ('KY', 'Kentucky'), ('LA', 'Louisiana'),
    ('ME', 'Maine'), ('MD', 'Maryland'), ('MA', 'Massachusetts'), ('MI', 'Michigan'),
    ('MN', 'Minnesota'), ('MS', 'Mississippi'), ('MO', 'Missouri'), ('MT', 'Montana'),
    ('NE', 'Nebraska'), ('NV', 'Nevada'), ('NH', 'New Hampshire'), ('NJ', 'New Jersey'),
    ('NM', 'New Mexico'), ('NY', 'New York'), ('NC', 'North Carolina'), ('ND', 'North Dakota'),
    ('OH', 'Ohio'), ('OK', 'Oklahoma'), ('OR', 'Oregon'), ('PA', 'Pennsylvania'),
    ('RI', 'Rhode Island'), ('SC', 'South Carolina'), ('SD', 'South Dakota'), ('TN', 'Tennessee'),
    ('TX', 'Texas'), ('UT', 'Utah'), ('VT', 'Vermont'), ('VA', 'Virginia'), ('WA', 'Washington'),
    ('WV', 'West Virginia'), ('WI', 'Wisconsin'), ('WY', 'Wyoming');

-- From the spec: states where the clinic does not operate.
update jurisdictions set excluded = true where code in ('MN', 'CA', 'TX', 'AR', 'NC', 'OK');

insert into pharmacies (id, name, system) values
    ('gmp', 'GMP (PioneerRx)', 'pioneerrx'),
    ('boothwyn', 'Boothwyn Pharmacy', 'lifefile'),
    ('strive', 'Strive Pharmacy', 'lifefile');

-- From the spec.
insert into prescribers (id, name, npi) values
    ('ali-nolan', 'Ali Nolan FNP-C', '1982609764'),
    ('neelima-singh', 'Neelima Singh MD', '1164633533');

-- PLACEHOLDER: the 18 GMP states (replace with GMP's licence matrix).
create temporary table default_gmp_states (code text primary key) on commit drop;
insert into default_gmp_states (code) values
    ('AL'), ('AZ'), ('FL'), ('GA'), ('IL'), ('IN'), ('KY'), ('LA'), ('MI'),
    ('MO'), ('MS'), ('NJ'), ('NY'), ('OH'), ('PA'), ('SC'), ('TN'), ('VA');

-- GMP states: GMP with Ali Nolan.
insert into state_routes (state, pharmacy_id, prescriber_id, priority)
select code, 'gmp', 'ali-nolan', 1 from default_gmp_states;

-- Every other eligible state: Boothwyn first, Strive as the fallback, with Neelima Singh.
insert into state_routes (state, pharmacy_id, prescriber_id, priority)
select j.code, p.id, 'neelima-singh', case p.id when 'boothwyn' then 1 else 2 end
from jurisdictions j cross join pharmacies p
where not j.excluded
  and p.id in ('boothwyn', 'strive')
  and j.code not in (select code from default_gmp_states);

-- PLACEHOLDER licence numbers and dates (demo data).
insert into prescriber_licences (prescriber_id, state, licence_number, expires_on)
select 'ali-nolan', code, 'DEMO-APRN-' || code, date '2028-12-31' from default_gmp_states;

insert into prescriber_licences (prescriber_id, state, licence_number, expires_on)
select 'neelima-singh', j.code, 'DEMO-MD-' || j.code, date '2028-12-31'
from jurisdictions j
where not j.excluded and j.code not in (select code from default_gmp_states);

-- DEMO DATA: a small medication catalogue. Prices in cents.
insert into medications (id, name, quantity, days_supply, refills, price_cents) values
    ('semaglutide', 'Compounded semaglutide injection', '2 mL', 28, 2, 29900),
    ('tirzepatide', 'Compounded tirzepatide injection', '2 mL', 28, 2, 39900),
    ('ondansetron', 'Ondansetron ODT 4 mg', '30 tablets', 30, 1, 2500);

insert into medication_doses (medication_id, position, label, strength, directions) values
    ('semaglutide', 1, '0.25 mg weekly', '2.5mg/mL', 'Inject 0.1 mL (0.25 mg) under the skin once weekly'),
    ('semaglutide', 2, '0.5 mg weekly', '2.5mg/mL', 'Inject 0.2 mL (0.5 mg) under the skin once weekly'),
    ('semaglutide', 3, '1 mg weekly', '2.5mg/mL', 'Inject 0.4 mL (1 mg) under the skin once weekly'),
    ('tirzepatide', 1, '2.5 mg weekly', '10mg/mL', 'Inject 0.25 mL (2.5 mg) under the skin once weekly'),
    ('tirzepatide', 2, '5 mg weekly', '10mg/mL', 'Inject 0.5 mL (5 mg) under the skin once weekly'),
    ('ondansetron', 1, '4 mg as needed', '4 mg', 'Dissolve 1 tablet on the tongue every 8 hours as needed for nausea');

-- Boothwyn does not compound tirzepatide in this demo catalogue, so Boothwyn states fall back to Strive.
insert into medication_pharmacies (medication_id, pharmacy_id) values
    ('semaglutide', 'gmp'), ('semaglutide', 'boothwyn'), ('semaglutide', 'strive'),
    ('tirzepatide', 'gmp'), ('tirzepatide', 'strive'),
    ('ondansetron', 'gmp'), ('ondansetron', 'boothwyn'), ('ondansetron', 'strive');
