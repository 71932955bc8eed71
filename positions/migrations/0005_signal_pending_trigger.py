"""A signal row that becomes `pending` announces itself to the dispatcher (`positions.dispatch`) from a
trigger, delivered on commit, instead of a `pg_notify` spliced into the statements that write it."""

from django.db import migrations

CHANNEL = "positions_signal"  # positions.dispatch.CHANNEL

FORWARD = f"""
CREATE FUNCTION positions_signal_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER positions_signal_pending_insert AFTER INSERT ON positions_webhooksignal
    FOR EACH ROW WHEN (NEW.processing_status = 'pending') EXECUTE FUNCTION positions_signal_announce();
CREATE TRIGGER positions_signal_pending_update AFTER UPDATE OF processing_status ON positions_webhooksignal
    FOR EACH ROW WHEN (NEW.processing_status = 'pending' AND OLD.processing_status IS DISTINCT FROM 'pending')
    EXECUTE FUNCTION positions_signal_announce();
"""
BACKWARD = """
DROP TRIGGER positions_signal_pending_update ON positions_webhooksignal;
DROP TRIGGER positions_signal_pending_insert ON positions_webhooksignal;
DROP FUNCTION positions_signal_announce();
"""


class Migration(migrations.Migration):
    dependencies = [("positions", "0004_queuedsignal_from_riskengine")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
