"""Leads and the marketing hand-off (issue 10): pure functions, frames in and frames out.

- `hours`: business hours in a time zone (working minutes between two instants, a deadline after them).
- `events`: a lead's history (assigned, first touch, accepted, rejected, recycled, returned, converted) from
  its fields, its activities and the app's own events.
- `sla`: speed to lead against an SLA counted in business hours, per lead, owner and source; breaches and
  the escalation list per manager.
- `response_effect`: conversion by response-time bucket, with confidence intervals, from the org's own leads.
- `routing`: round robin, territory and capacity rules applied to new unassigned leads.
- `recycle`: accepting and rejecting with a reason from the recycle taxonomy, nurture with a re-engage date,
  and the leads that come back.
- `funnel`: lead → accepted → opportunity → won by source and campaign, with times and revenue, and the
  marketing-facing lead quality by source.

Nothing here reads the database; `db.leads` does, and `services.leads` (reports), `services.lead_verdicts`
(accept, reject, give back) and `services.lead_routing` put the two together.
"""
