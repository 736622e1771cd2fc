-- (placeholder: filled in by issue 12 work)
select 1;
