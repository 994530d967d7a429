"""Learning from what was recorded: dataset manifests out of the store (`manifests`) and finished
training runs back into it as candidate models (`runs`); the scheduler, evaluation gate and promotion
join them here."""
