-- macros: the one definition of each parsing and labelling rule the models share.
--
-- The lake already stores flags as BOOLEAN and ratings as INT8, but the models call these macros
-- anyway so that a column arriving as text (an older lake file, a hand-loaded extract) means the
-- same thing everywhere.

-- parse_flag(value): the issue's flag contract. true, 1, "1", "true" (any case, also "yes"/"t"/"y")
-- are true; false, 0, "0", "false", "no", "f", "n" are false; anything else (null, "", "maybe") is
-- null, meaning unknown.
create or replace macro parse_flag(value) as (
    case lower(trim(cast(value as varchar)))
        when 'true' then true
        when '1' then true
        when 'yes' then true
        when 't' then true
        when 'y' then true
        when 'false' then false
        when '0' then false
        when 'no' then false
        when 'f' then false
        when 'n' then false
    end
);

-- parse_rating(value): the rating contract. A visit is rated when signeeRating is an integer 1..5
-- (5 and "5" and 5.0 alike); 0, empty, null, missing, fractional or out-of-range values are
-- unrated and come out null.
create or replace macro parse_rating(value) as (
    case
        when try_cast(cast(value as varchar) as double) between 1 and 5
            and try_cast(cast(value as varchar) as double)
                = floor(try_cast(cast(value as varchar) as double))
            then cast(try_cast(cast(value as varchar) as double) as tinyint)
    end
);

-- nps_category(rating): promoter = 5, passive = 4, detractor = 1..3 (an NPS-style score on the
-- API's 5-point scale); null for an unrated visit.
create or replace macro nps_category(rating) as (
    case
        when rating = 5 then 'promoter'
        when rating = 4 then 'passive'
        when rating between 1 and 3 then 'detractor'
    end
);

-- unknown_member(value): the label a dimension key gets when the source left it empty, so that
-- every visit lands in a dimension row and per-driver or per-territory totals add up to the day.
create or replace macro unknown_member(value) as (
    coalesce(nullif(trim(cast(value as varchar)), ''), '(unknown)')
);
