"""The channel-neutral kernel: the neutral model, the durable request queue, delivery and jobs.

It sits below the conversation flows and knows nothing of them: flows and
channel adapters plug into it (request handlers and routes, deliverers, the job
renderer), and the composition root (``bot.app``) wires them together.
"""
