"""The FineTuneJob lifecycle: the phase machine (`reconcile`), its conditions, the plan it renders for the
runtime, the status it writes, the progress it reads back (`tracker`, the operator's end of the runtime's
event protocol), and the cost it counts. Knows no kopf: the handlers drive it."""
