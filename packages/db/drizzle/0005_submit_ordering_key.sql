-- Written by `pnpm db:submission` from packages/db/src/submission/sql.ts: change the rules there
-- (rules.ts), not here.
-- Every function pins the queue's schema (then pg_temp) as its search_path: the one this migration
-- runs in. submit_order and submit_orders run as their owner (security definer), so a role that may
-- only submit needs EXECUTE on them and USAGE on the schema, and nothing on the tables.
select set_config('search_path', quote_ident(current_schema()) || ', pg_temp', true);
--> statement-breakpoint

-- The instant an RFC 3339 date-time names, to the millisecond (as JavaScript's Date.parse reads it),
-- or null: not the format, a day its month does not have, a leap second, a year before 1969.
create or replace function rfc3339_instant(value text) returns timestamptz
language plpgsql stable set search_path from current as $fn$
declare
  part text[] := regexp_match(value,
    '^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))$');
begin
  -- One condition at a time: SQL does not promise to evaluate an OR's operands in order, and
  -- make_date fails on a month or year out of range.
  if part is null or part[1]::int < 1969 then return null; end if;
  if part[2]::int not between 1 and 12 or part[3]::int < 1 then return null; end if;
  if part[3]::int > extract(day from make_date(part[1]::int, part[2]::int, 1) + interval '1 month - 1 day') then
    return null;
  end if;
  if part[4]::int > 23 or part[5]::int > 59 or part[6]::int > 59 then return null; end if;
  if coalesce(part[10]::int, 0) > 23 or coalesce(part[11]::int, 0) > 59 then return null; end if;
  -- The local time read as UTC, less its offset: PostgreSQL's own parser refuses offsets past 15:59,
  -- which RFC 3339 (and the api) allow up to 23:59.
  return format('%s-%s-%sT%s:%s:%s%sZ', part[1], part[2], part[3], part[4], part[5], part[6],
                left(coalesce(part[7], ''), 4))::timestamptz
         - case part[9] when '-' then -1 else 1 end
           * make_interval(hours => coalesce(part[10]::int, 0), mins => coalesce(part[11]::int, 0));
end
$fn$;
--> statement-breakpoint

-- Generated from NewOrderBody (rules.ts).
create or replace function order_problem(body jsonb) returns text
language plpgsql stable set search_path from current as $fn$
declare
  unknown text;
  i0 int;
  o int;
  instant timestamptz;
begin
  if jsonb_typeof(body) is distinct from 'object' then return '' || ' must be an object'; end if;
  unknown := (select k from jsonb_object_keys(body) k where k <> all(array['customerId', 'currency', 'items', 'priority', 'runAt', 'delaySeconds', 'maxAttempts', 'orderingKey']) limit 1);
  if unknown is not null then return '' || '/' || unknown || ' is not an allowed property'; end if;
  if not (body ? 'customerId') then return '' || '/customerId' || ' is required'; end if;
  if not (body ? 'currency') then return '' || '/currency' || ' is required'; end if;
  if not (body ? 'items') then return '' || '/items' || ' is required'; end if;
  if body ? 'customerId' then
    if jsonb_typeof(body -> 'customerId') is distinct from 'string' then return '' || '/customerId' || ' must be a string'; end if;
    if char_length(body -> 'customerId' #>> '{}') < 1 then return '' || '/customerId' || ' must have at least 1 characters'; end if;
    if char_length(body -> 'customerId' #>> '{}') > 128 then return '' || '/customerId' || ' must have at most 128 characters'; end if;
    if (body -> 'customerId' #>> '{}') !~ '^[^\x01-\x1f\x7f-\x9f]+$' then return '' || '/customerId' || ' must not contain control characters'; end if;
  end if;
  if body ? 'currency' then
    if jsonb_typeof(body -> 'currency') is distinct from 'string' then return '' || '/currency' || ' must be a string'; end if;
    if (body -> 'currency' #>> '{}') <> all(array['AED', 'AFN', 'ALL', 'AMD', 'ANG', 'AOA', 'ARS', 'AUD', 'AWG', 'AZN', 'BAM', 'BBD', 'BDT', 'BGN', 'BHD', 'BIF', 'BMD', 'BND', 'BOB', 'BRL', 'BSD', 'BTN', 'BWP', 'BYN', 'BZD', 'CAD', 'CDF', 'CHF', 'CLP', 'CNY', 'COP', 'CRC', 'CUC', 'CUP', 'CVE', 'CZK', 'DJF', 'DKK', 'DOP', 'DZD', 'EGP', 'ERN', 'ETB', 'EUR', 'FJD', 'FKP', 'GBP', 'GEL', 'GHS', 'GIP', 'GMD', 'GNF', 'GTQ', 'GYD', 'HKD', 'HNL', 'HRK', 'HTG', 'HUF', 'IDR', 'ILS', 'INR', 'IQD', 'IRR', 'ISK', 'JMD', 'JOD', 'JPY', 'KES', 'KGS', 'KHR', 'KMF', 'KPW', 'KRW', 'KWD', 'KYD', 'KZT', 'LAK', 'LBP', 'LKR', 'LRD', 'LSL', 'LYD', 'MAD', 'MDL', 'MGA', 'MKD', 'MMK', 'MNT', 'MOP', 'MRU', 'MUR', 'MVR', 'MWK', 'MXN', 'MYR', 'MZN', 'NAD', 'NGN', 'NIO', 'NOK', 'NPR', 'NZD', 'OMR', 'PAB', 'PEN', 'PGK', 'PHP', 'PKR', 'PLN', 'PYG', 'QAR', 'RON', 'RSD', 'RUB', 'RWF', 'SAR', 'SBD', 'SCR', 'SDG', 'SEK', 'SGD', 'SHP', 'SLE', 'SLL', 'SOS', 'SRD', 'SSP', 'STN', 'SVC', 'SYP', 'SZL', 'THB', 'TJS', 'TMT', 'TND', 'TOP', 'TRY', 'TTD', 'TWD', 'TZS', 'UAH', 'UGX', 'USD', 'UYU', 'UZS', 'VES', 'VND', 'VUV', 'WST', 'XAF', 'XCD', 'XCG', 'XDR', 'XOF', 'XPF', 'XSU', 'YER', 'ZAR', 'ZMW', 'ZWG', 'ZWL']) then return '' || '/currency' || ' must be one of its allowed values'; end if;
  end if;
  if body ? 'items' then
    if jsonb_typeof(body -> 'items') is distinct from 'array' then return '' || '/items' || ' must be an array'; end if;
    if jsonb_array_length(body -> 'items') < 1 then return '' || '/items' || ' must have at least 1 items'; end if;
    if jsonb_array_length(body -> 'items') > 100 then return '' || '/items' || ' must have at most 100 items'; end if;
    for i0 in 0 .. jsonb_array_length(body -> 'items') - 1 loop
      if jsonb_typeof(body -> 'items' -> i0) is distinct from 'object' then return '' || '/items' || '/' || i0 || ' must be an object'; end if;
      unknown := (select k from jsonb_object_keys(body -> 'items' -> i0) k where k <> all(array['sku', 'quantity', 'unitPriceCents']) limit 1);
      if unknown is not null then return '' || '/items' || '/' || i0 || '/' || unknown || ' is not an allowed property'; end if;
      if not (body -> 'items' -> i0 ? 'sku') then return '' || '/items' || '/' || i0 || '/sku' || ' is required'; end if;
      if not (body -> 'items' -> i0 ? 'quantity') then return '' || '/items' || '/' || i0 || '/quantity' || ' is required'; end if;
      if not (body -> 'items' -> i0 ? 'unitPriceCents') then return '' || '/items' || '/' || i0 || '/unitPriceCents' || ' is required'; end if;
      if body -> 'items' -> i0 ? 'sku' then
        if jsonb_typeof(body -> 'items' -> i0 -> 'sku') is distinct from 'string' then return '' || '/items' || '/' || i0 || '/sku' || ' must be a string'; end if;
        if char_length(body -> 'items' -> i0 -> 'sku' #>> '{}') < 1 then return '' || '/items' || '/' || i0 || '/sku' || ' must have at least 1 characters'; end if;
        if char_length(body -> 'items' -> i0 -> 'sku' #>> '{}') > 64 then return '' || '/items' || '/' || i0 || '/sku' || ' must have at most 64 characters'; end if;
        if (body -> 'items' -> i0 -> 'sku' #>> '{}') !~ '^[^\x01-\x1f\x7f-\x9f]+$' then return '' || '/items' || '/' || i0 || '/sku' || ' must not contain control characters'; end if;
      end if;
      if body -> 'items' -> i0 ? 'quantity' then
        if jsonb_typeof(body -> 'items' -> i0 -> 'quantity') is distinct from 'number' then return '' || '/items' || '/' || i0 || '/quantity' || ' must be an integer'; end if;
        if (body -> 'items' -> i0 -> 'quantity')::numeric <> trunc((body -> 'items' -> i0 -> 'quantity')::numeric) then return '' || '/items' || '/' || i0 || '/quantity' || ' must be an integer'; end if;
        if (body -> 'items' -> i0 -> 'quantity')::numeric < 1 then return '' || '/items' || '/' || i0 || '/quantity' || ' must be >= 1'; end if;
        if (body -> 'items' -> i0 -> 'quantity')::numeric > 10000 then return '' || '/items' || '/' || i0 || '/quantity' || ' must be <= 10000'; end if;
      end if;
      if body -> 'items' -> i0 ? 'unitPriceCents' then
        if jsonb_typeof(body -> 'items' -> i0 -> 'unitPriceCents') is distinct from 'number' then return '' || '/items' || '/' || i0 || '/unitPriceCents' || ' must be an integer'; end if;
        if (body -> 'items' -> i0 -> 'unitPriceCents')::numeric <> trunc((body -> 'items' -> i0 -> 'unitPriceCents')::numeric) then return '' || '/items' || '/' || i0 || '/unitPriceCents' || ' must be an integer'; end if;
        if (body -> 'items' -> i0 -> 'unitPriceCents')::numeric < 0 then return '' || '/items' || '/' || i0 || '/unitPriceCents' || ' must be >= 0'; end if;
        if (body -> 'items' -> i0 -> 'unitPriceCents')::numeric > 1000000000 then return '' || '/items' || '/' || i0 || '/unitPriceCents' || ' must be <= 1000000000'; end if;
      end if;
    end loop;
  end if;
  if body ? 'priority' then
    if jsonb_typeof(body -> 'priority') is distinct from 'number' then return '' || '/priority' || ' must be an integer'; end if;
    if (body -> 'priority')::numeric <> trunc((body -> 'priority')::numeric) then return '' || '/priority' || ' must be an integer'; end if;
    if (body -> 'priority')::numeric < -1000 then return '' || '/priority' || ' must be >= -1000'; end if;
    if (body -> 'priority')::numeric > 1000 then return '' || '/priority' || ' must be <= 1000'; end if;
  end if;
  if body ? 'runAt' then
    if jsonb_typeof(body -> 'runAt') is distinct from 'string' then return '' || '/runAt' || ' must be a string'; end if;
    if rfc3339_instant(body -> 'runAt' #>> '{}') is null then return '' || '/runAt' || ' must be an RFC 3339 date-time'; end if;
  end if;
  if body ? 'delaySeconds' then
    if jsonb_typeof(body -> 'delaySeconds') is distinct from 'number' then return '' || '/delaySeconds' || ' must be an integer'; end if;
    if (body -> 'delaySeconds')::numeric <> trunc((body -> 'delaySeconds')::numeric) then return '' || '/delaySeconds' || ' must be an integer'; end if;
    if (body -> 'delaySeconds')::numeric < 0 then return '' || '/delaySeconds' || ' must be >= 0'; end if;
    if (body -> 'delaySeconds')::numeric > 31536000 then return '' || '/delaySeconds' || ' must be <= 31536000'; end if;
  end if;
  if body ? 'maxAttempts' then
    if jsonb_typeof(body -> 'maxAttempts') is distinct from 'number' then return '' || '/maxAttempts' || ' must be an integer'; end if;
    if (body -> 'maxAttempts')::numeric <> trunc((body -> 'maxAttempts')::numeric) then return '' || '/maxAttempts' || ' must be an integer'; end if;
    if (body -> 'maxAttempts')::numeric < 1 then return '' || '/maxAttempts' || ' must be >= 1'; end if;
    if (body -> 'maxAttempts')::numeric > 100 then return '' || '/maxAttempts' || ' must be <= 100'; end if;
  end if;
  if body ? 'orderingKey' then
    if jsonb_typeof(body -> 'orderingKey') is distinct from 'string' then return '' || '/orderingKey' || ' must be a string'; end if;
    if char_length(body -> 'orderingKey' #>> '{}') < 1 then return '' || '/orderingKey' || ' must have at least 1 characters'; end if;
    if char_length(body -> 'orderingKey' #>> '{}') > 128 then return '' || '/orderingKey' || ' must have at most 128 characters'; end if;
    if (body -> 'orderingKey' #>> '{}') !~ '^[^\x01-\x1f\x7f-\x9f]+$' then return '' || '/orderingKey' || ' must not contain control characters'; end if;
  end if;
  for o in 0 .. jsonb_array_length(jsonb_build_array(body)) - 1 loop
    if (jsonb_build_array(body) -> o) ? 'runAt' and (jsonb_build_array(body) -> o) ? 'delaySeconds' then
      return '' || '/delaySeconds must not be given with runAt';
    end if;
    instant := rfc3339_instant(jsonb_build_array(body) -> o ->> 'runAt');
    if instant < '1970-01-01T00:00:00.000Z' or instant > '9999-12-31T23:59:59.999Z' then
      return '' || '/runAt must be an instant from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z';
    end if;
  end loop;
  return null;
end
$fn$;
--> statement-breakpoint

-- Generated from NewOrderBatchBody (rules.ts).
create or replace function order_batch_problem(body jsonb) returns text
language plpgsql stable set search_path from current as $fn$
declare
  unknown text;
  i0 int;
  i1 int;
  o int;
  instant timestamptz;
begin
  if jsonb_typeof(body) is distinct from 'object' then return '' || ' must be an object'; end if;
  unknown := (select k from jsonb_object_keys(body) k where k <> all(array['orders']) limit 1);
  if unknown is not null then return '' || '/' || unknown || ' is not an allowed property'; end if;
  if not (body ? 'orders') then return '' || '/orders' || ' is required'; end if;
  if body ? 'orders' then
    if jsonb_typeof(body -> 'orders') is distinct from 'array' then return '' || '/orders' || ' must be an array'; end if;
    if jsonb_array_length(body -> 'orders') < 1 then return '' || '/orders' || ' must have at least 1 items'; end if;
    if jsonb_array_length(body -> 'orders') > 1000 then return '' || '/orders' || ' must have at most 1000 items'; end if;
    for i0 in 0 .. jsonb_array_length(body -> 'orders') - 1 loop
      if jsonb_typeof(body -> 'orders' -> i0) is distinct from 'object' then return '' || '/orders' || '/' || i0 || ' must be an object'; end if;
      unknown := (select k from jsonb_object_keys(body -> 'orders' -> i0) k where k <> all(array['customerId', 'currency', 'items', 'priority', 'runAt', 'delaySeconds', 'maxAttempts', 'orderingKey']) limit 1);
      if unknown is not null then return '' || '/orders' || '/' || i0 || '/' || unknown || ' is not an allowed property'; end if;
      if not (body -> 'orders' -> i0 ? 'customerId') then return '' || '/orders' || '/' || i0 || '/customerId' || ' is required'; end if;
      if not (body -> 'orders' -> i0 ? 'currency') then return '' || '/orders' || '/' || i0 || '/currency' || ' is required'; end if;
      if not (body -> 'orders' -> i0 ? 'items') then return '' || '/orders' || '/' || i0 || '/items' || ' is required'; end if;
      if body -> 'orders' -> i0 ? 'customerId' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'customerId') is distinct from 'string' then return '' || '/orders' || '/' || i0 || '/customerId' || ' must be a string'; end if;
        if char_length(body -> 'orders' -> i0 -> 'customerId' #>> '{}') < 1 then return '' || '/orders' || '/' || i0 || '/customerId' || ' must have at least 1 characters'; end if;
        if char_length(body -> 'orders' -> i0 -> 'customerId' #>> '{}') > 128 then return '' || '/orders' || '/' || i0 || '/customerId' || ' must have at most 128 characters'; end if;
        if (body -> 'orders' -> i0 -> 'customerId' #>> '{}') !~ '^[^\x01-\x1f\x7f-\x9f]+$' then return '' || '/orders' || '/' || i0 || '/customerId' || ' must not contain control characters'; end if;
      end if;
      if body -> 'orders' -> i0 ? 'currency' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'currency') is distinct from 'string' then return '' || '/orders' || '/' || i0 || '/currency' || ' must be a string'; end if;
        if (body -> 'orders' -> i0 -> 'currency' #>> '{}') <> all(array['AED', 'AFN', 'ALL', 'AMD', 'ANG', 'AOA', 'ARS', 'AUD', 'AWG', 'AZN', 'BAM', 'BBD', 'BDT', 'BGN', 'BHD', 'BIF', 'BMD', 'BND', 'BOB', 'BRL', 'BSD', 'BTN', 'BWP', 'BYN', 'BZD', 'CAD', 'CDF', 'CHF', 'CLP', 'CNY', 'COP', 'CRC', 'CUC', 'CUP', 'CVE', 'CZK', 'DJF', 'DKK', 'DOP', 'DZD', 'EGP', 'ERN', 'ETB', 'EUR', 'FJD', 'FKP', 'GBP', 'GEL', 'GHS', 'GIP', 'GMD', 'GNF', 'GTQ', 'GYD', 'HKD', 'HNL', 'HRK', 'HTG', 'HUF', 'IDR', 'ILS', 'INR', 'IQD', 'IRR', 'ISK', 'JMD', 'JOD', 'JPY', 'KES', 'KGS', 'KHR', 'KMF', 'KPW', 'KRW', 'KWD', 'KYD', 'KZT', 'LAK', 'LBP', 'LKR', 'LRD', 'LSL', 'LYD', 'MAD', 'MDL', 'MGA', 'MKD', 'MMK', 'MNT', 'MOP', 'MRU', 'MUR', 'MVR', 'MWK', 'MXN', 'MYR', 'MZN', 'NAD', 'NGN', 'NIO', 'NOK', 'NPR', 'NZD', 'OMR', 'PAB', 'PEN', 'PGK', 'PHP', 'PKR', 'PLN', 'PYG', 'QAR', 'RON', 'RSD', 'RUB', 'RWF', 'SAR', 'SBD', 'SCR', 'SDG', 'SEK', 'SGD', 'SHP', 'SLE', 'SLL', 'SOS', 'SRD', 'SSP', 'STN', 'SVC', 'SYP', 'SZL', 'THB', 'TJS', 'TMT', 'TND', 'TOP', 'TRY', 'TTD', 'TWD', 'TZS', 'UAH', 'UGX', 'USD', 'UYU', 'UZS', 'VES', 'VND', 'VUV', 'WST', 'XAF', 'XCD', 'XCG', 'XDR', 'XOF', 'XPF', 'XSU', 'YER', 'ZAR', 'ZMW', 'ZWG', 'ZWL']) then return '' || '/orders' || '/' || i0 || '/currency' || ' must be one of its allowed values'; end if;
      end if;
      if body -> 'orders' -> i0 ? 'items' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'items') is distinct from 'array' then return '' || '/orders' || '/' || i0 || '/items' || ' must be an array'; end if;
        if jsonb_array_length(body -> 'orders' -> i0 -> 'items') < 1 then return '' || '/orders' || '/' || i0 || '/items' || ' must have at least 1 items'; end if;
        if jsonb_array_length(body -> 'orders' -> i0 -> 'items') > 100 then return '' || '/orders' || '/' || i0 || '/items' || ' must have at most 100 items'; end if;
        for i1 in 0 .. jsonb_array_length(body -> 'orders' -> i0 -> 'items') - 1 loop
          if jsonb_typeof(body -> 'orders' -> i0 -> 'items' -> i1) is distinct from 'object' then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || ' must be an object'; end if;
          unknown := (select k from jsonb_object_keys(body -> 'orders' -> i0 -> 'items' -> i1) k where k <> all(array['sku', 'quantity', 'unitPriceCents']) limit 1);
          if unknown is not null then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/' || unknown || ' is not an allowed property'; end if;
          if not (body -> 'orders' -> i0 -> 'items' -> i1 ? 'sku') then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/sku' || ' is required'; end if;
          if not (body -> 'orders' -> i0 -> 'items' -> i1 ? 'quantity') then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/quantity' || ' is required'; end if;
          if not (body -> 'orders' -> i0 -> 'items' -> i1 ? 'unitPriceCents') then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/unitPriceCents' || ' is required'; end if;
          if body -> 'orders' -> i0 -> 'items' -> i1 ? 'sku' then
            if jsonb_typeof(body -> 'orders' -> i0 -> 'items' -> i1 -> 'sku') is distinct from 'string' then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/sku' || ' must be a string'; end if;
            if char_length(body -> 'orders' -> i0 -> 'items' -> i1 -> 'sku' #>> '{}') < 1 then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/sku' || ' must have at least 1 characters'; end if;
            if char_length(body -> 'orders' -> i0 -> 'items' -> i1 -> 'sku' #>> '{}') > 64 then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/sku' || ' must have at most 64 characters'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'sku' #>> '{}') !~ '^[^\x01-\x1f\x7f-\x9f]+$' then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/sku' || ' must not contain control characters'; end if;
          end if;
          if body -> 'orders' -> i0 -> 'items' -> i1 ? 'quantity' then
            if jsonb_typeof(body -> 'orders' -> i0 -> 'items' -> i1 -> 'quantity') is distinct from 'number' then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/quantity' || ' must be an integer'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'quantity')::numeric <> trunc((body -> 'orders' -> i0 -> 'items' -> i1 -> 'quantity')::numeric) then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/quantity' || ' must be an integer'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'quantity')::numeric < 1 then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/quantity' || ' must be >= 1'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'quantity')::numeric > 10000 then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/quantity' || ' must be <= 10000'; end if;
          end if;
          if body -> 'orders' -> i0 -> 'items' -> i1 ? 'unitPriceCents' then
            if jsonb_typeof(body -> 'orders' -> i0 -> 'items' -> i1 -> 'unitPriceCents') is distinct from 'number' then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/unitPriceCents' || ' must be an integer'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'unitPriceCents')::numeric <> trunc((body -> 'orders' -> i0 -> 'items' -> i1 -> 'unitPriceCents')::numeric) then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/unitPriceCents' || ' must be an integer'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'unitPriceCents')::numeric < 0 then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/unitPriceCents' || ' must be >= 0'; end if;
            if (body -> 'orders' -> i0 -> 'items' -> i1 -> 'unitPriceCents')::numeric > 1000000000 then return '' || '/orders' || '/' || i0 || '/items' || '/' || i1 || '/unitPriceCents' || ' must be <= 1000000000'; end if;
          end if;
        end loop;
      end if;
      if body -> 'orders' -> i0 ? 'priority' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'priority') is distinct from 'number' then return '' || '/orders' || '/' || i0 || '/priority' || ' must be an integer'; end if;
        if (body -> 'orders' -> i0 -> 'priority')::numeric <> trunc((body -> 'orders' -> i0 -> 'priority')::numeric) then return '' || '/orders' || '/' || i0 || '/priority' || ' must be an integer'; end if;
        if (body -> 'orders' -> i0 -> 'priority')::numeric < -1000 then return '' || '/orders' || '/' || i0 || '/priority' || ' must be >= -1000'; end if;
        if (body -> 'orders' -> i0 -> 'priority')::numeric > 1000 then return '' || '/orders' || '/' || i0 || '/priority' || ' must be <= 1000'; end if;
      end if;
      if body -> 'orders' -> i0 ? 'runAt' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'runAt') is distinct from 'string' then return '' || '/orders' || '/' || i0 || '/runAt' || ' must be a string'; end if;
        if rfc3339_instant(body -> 'orders' -> i0 -> 'runAt' #>> '{}') is null then return '' || '/orders' || '/' || i0 || '/runAt' || ' must be an RFC 3339 date-time'; end if;
      end if;
      if body -> 'orders' -> i0 ? 'delaySeconds' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'delaySeconds') is distinct from 'number' then return '' || '/orders' || '/' || i0 || '/delaySeconds' || ' must be an integer'; end if;
        if (body -> 'orders' -> i0 -> 'delaySeconds')::numeric <> trunc((body -> 'orders' -> i0 -> 'delaySeconds')::numeric) then return '' || '/orders' || '/' || i0 || '/delaySeconds' || ' must be an integer'; end if;
        if (body -> 'orders' -> i0 -> 'delaySeconds')::numeric < 0 then return '' || '/orders' || '/' || i0 || '/delaySeconds' || ' must be >= 0'; end if;
        if (body -> 'orders' -> i0 -> 'delaySeconds')::numeric > 31536000 then return '' || '/orders' || '/' || i0 || '/delaySeconds' || ' must be <= 31536000'; end if;
      end if;
      if body -> 'orders' -> i0 ? 'maxAttempts' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'maxAttempts') is distinct from 'number' then return '' || '/orders' || '/' || i0 || '/maxAttempts' || ' must be an integer'; end if;
        if (body -> 'orders' -> i0 -> 'maxAttempts')::numeric <> trunc((body -> 'orders' -> i0 -> 'maxAttempts')::numeric) then return '' || '/orders' || '/' || i0 || '/maxAttempts' || ' must be an integer'; end if;
        if (body -> 'orders' -> i0 -> 'maxAttempts')::numeric < 1 then return '' || '/orders' || '/' || i0 || '/maxAttempts' || ' must be >= 1'; end if;
        if (body -> 'orders' -> i0 -> 'maxAttempts')::numeric > 100 then return '' || '/orders' || '/' || i0 || '/maxAttempts' || ' must be <= 100'; end if;
      end if;
      if body -> 'orders' -> i0 ? 'orderingKey' then
        if jsonb_typeof(body -> 'orders' -> i0 -> 'orderingKey') is distinct from 'string' then return '' || '/orders' || '/' || i0 || '/orderingKey' || ' must be a string'; end if;
        if char_length(body -> 'orders' -> i0 -> 'orderingKey' #>> '{}') < 1 then return '' || '/orders' || '/' || i0 || '/orderingKey' || ' must have at least 1 characters'; end if;
        if char_length(body -> 'orders' -> i0 -> 'orderingKey' #>> '{}') > 128 then return '' || '/orders' || '/' || i0 || '/orderingKey' || ' must have at most 128 characters'; end if;
        if (body -> 'orders' -> i0 -> 'orderingKey' #>> '{}') !~ '^[^\x01-\x1f\x7f-\x9f]+$' then return '' || '/orders' || '/' || i0 || '/orderingKey' || ' must not contain control characters'; end if;
      end if;
    end loop;
  end if;
  for o in 0 .. jsonb_array_length((body -> 'orders')) - 1 loop
    if ((body -> 'orders') -> o) ? 'runAt' and ((body -> 'orders') -> o) ? 'delaySeconds' then
      return '/orders/' || o || '/delaySeconds must not be given with runAt';
    end if;
    instant := rfc3339_instant((body -> 'orders') -> o ->> 'runAt');
    if instant < '1970-01-01T00:00:00.000Z' or instant > '9999-12-31T23:59:59.999Z' then
      return '/orders/' || o || '/runAt must be an instant from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z';
    end if;
  end loop;
  return null;
end
$fn$;
--> statement-breakpoint

-- JSON as the api's requestHash writes it before hashing (services/api/src/submission.ts): object keys
-- sorted, no spaces. A valid order holds only strings, integers, arrays and objects.
create or replace function canonical_json(value jsonb) returns text
language sql immutable set search_path from current as $fn$
  select case jsonb_typeof(value)
    when 'object' then '{' || coalesce((
      select string_agg(to_json(key)::text || ':' || canonical_json(item), ',' order by key collate "C")
      from jsonb_each(value) as member(key, item)), '') || '}'
    when 'array' then '[' || coalesce((
      select string_agg(canonical_json(item), ',' order by position)
      from jsonb_array_elements(value) with ordinality as element(item, position)), '') || ']'
    when 'number' then trunc(value::numeric)::text
    else value::text
  end
$fn$;
--> statement-breakpoint

-- Stores valid orders, their defaults filled, as POST /orders does: the total computed, due now or
-- scheduled (runAt, or delaySeconds on the database's clock), under the Idempotency-Key if one is
-- given (the api's keys: `request_hash` is its hash of the same body), the workers woken when the
-- caller commits (NOTIFY is transactional). Returns the ids, or the ids the key stored before.
create or replace function store_submission(submitted jsonb, key_given text, hash text) returns bigint[]
language plpgsql volatile set search_path from current as $fn$
declare
  ids bigint[];
  taken idempotency_keys;
  due_now boolean;
  earliest timestamptz;
begin
  -- The orderingKeys' locks first (queries/ordering-keys.ts), in key order; then the ids, drawn in
  -- the order the keys' lines are joined; the insert, a later statement, sees the last holder's commit.
  insert into ordering_keys (key)
  select distinct value ->> 'orderingKey' from jsonb_array_elements(submitted)
  where value ->> 'orderingKey' is not null order by 1
  on conflict (key) do update set key = excluded.key where false;
  ids := array(select nextval('orders_id_seq') from generate_series(1, jsonb_array_length(submitted)));
  if key_given is not null then
    insert into idempotency_keys (key, request_hash, order_ids) values (key_given, hash, ids)
    on conflict (key) do nothing;
    if not found then
      -- Taken, earlier or by a concurrent duplicate (whose commit this insert waited for).
      select * into taken from idempotency_keys where key = key_given;
      if taken.request_hash <> hash then
        raise exception using errcode = 'PQ002',
          message = format('Idempotency-Key %s was used for another request; nothing was stored', key_given);
      end if;
      return taken.order_ids;
    end if;
  end if;
  with input as (
    select ids[position] as id, value as body, value ->> 'orderingKey' as ordering_key,
           row_number() over (partition by value ->> 'orderingKey' order by position) as place_in_key,
           greatest(coalesce(rfc3339_instant(value ->> 'runAt'),
                             statement_timestamp() + (value ->> 'delaySeconds')::int * interval '1 second',
                             statement_timestamp()),
                    statement_timestamp()) as run_at
    from jsonb_array_elements(submitted) with ordinality as submission(value, position)
  ),
  stored as (
    insert into orders (id, customer_id, currency, items, total_cents, status, priority, run_at, max_attempts,
                        ordering_key, created_at, updated_at)
    overriding system value
    select id, body ->> 'customerId', body ->> 'currency', body -> 'items',
           (select sum((item ->> 'quantity')::bigint * (item ->> 'unitPriceCents')::bigint)
            from jsonb_array_elements(body -> 'items') as item),
           case
             -- Behind an earlier order of its key: this submission's, or a head already in line.
             when ordering_key is not null and (place_in_key > 1 or exists (
               select from orders as head
               where head.ordering_key = input.ordering_key
                 and (head.status in ('scheduled', 'pending', 'processing') or (head.status = 'failed' and head.skipped_at is null)))) then 'waiting'
             when run_at > statement_timestamp() then 'scheduled'
             else 'pending' end,
           (body ->> 'priority')::int, run_at, (body ->> 'maxAttempts')::int,
           ordering_key, statement_timestamp(), statement_timestamp()
    from input
    order by id
    returning status, run_at
  )
  select bool_or(status = 'pending'), min(run_at) filter (where status = 'scheduled')
  into due_now, earliest
  from stored;
  -- As the api's wake-ups say it (queries/wakeups.ts): '' for due now, else the due time in ms.
  if due_now then perform pg_notify(current_schema() || '_orders', ''); end if;
  if earliest is not null then
    perform pg_notify(current_schema() || '_orders', (extract(epoch from earliest) * 1000)::bigint::text);
  end if;
  return ids;
end
$fn$;
--> statement-breakpoint

-- One order (an object as POST /orders takes it), stored in the caller's transaction; its id.
-- Refused with SQLSTATE PQ001 and the rule it breaks, or PQ002 for a key used
-- for another request: nothing is stored.
create or replace function submit_order(new_order jsonb, idempotency_key text default null) returns bigint
language plpgsql volatile security definer set search_path from current as $fn$
declare
  problem text := order_problem(new_order);
  filled jsonb;
begin
  if problem is not null then
    raise exception using errcode = 'PQ001', message = 'order' || problem;
  end if;
  filled := '{"priority":0,"maxAttempts":5}'::jsonb || new_order;
  return (store_submission(jsonb_build_array(filled), idempotency_key, encode(sha256(convert_to(canonical_json(filled), 'UTF8')), 'hex')))[1];
end
$fn$;
--> statement-breakpoint

-- Up to 1,000 orders (an array, as POST /orders/batch takes them), stored whole or not at all; their
-- ids in order. Refused as submit_order is.
create or replace function submit_orders(new_orders jsonb, idempotency_key text default null) returns bigint[]
language plpgsql volatile security definer set search_path from current as $fn$
declare
  body jsonb := jsonb_build_object('orders', new_orders);
  problem text := order_batch_problem(body);
begin
  if problem is not null then
    raise exception using errcode = 'PQ001', message = 'batch' || problem;
  end if;
  body := jsonb_build_object('orders', (
    select jsonb_agg('{"priority":0,"maxAttempts":5}'::jsonb || value order by position)
    from jsonb_array_elements(new_orders) with ordinality as submission(value, position)));
  return store_submission(body -> 'orders', idempotency_key, encode(sha256(convert_to(canonical_json(body), 'UTF8')), 'hex'));
end
$fn$;
--> statement-breakpoint

revoke all on function rfc3339_instant(text), order_problem(jsonb), order_batch_problem(jsonb),
  canonical_json(jsonb), store_submission(jsonb, text, text), submit_order(jsonb, text),
  submit_orders(jsonb, text) from public;
