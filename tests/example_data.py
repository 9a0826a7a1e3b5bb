"""The project's own example datasets: one small file per format the validator knows.

The files under ``tests/data/datasets/`` are what the tests and `make demo` validate and train on (the
FineTuneJobs in examples/jobs name them as the shapes they expect). :func:`build` writes them from the
hand-written items below and from arithmetic with a fixed seed, so they are deterministic; a unit test
fails when a file no longer equals what :func:`build` writes. Regenerate them with
``python -m tests.example_data``.

Each format gets rows shaped the way users bring them (LLaMA-Factory, ShareGPT, TRL, GSM8K); the rows
differ from one another (no duplicates) and vary in length, and there are enough of them for the
training tests' steps and for the validator's sampling and estimates.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATASETS = Path(__file__).resolve().parent / "data" / "datasets"
"""Where the files live."""

Row = dict[str, Any]

SYSTEM = "You are a helpful assistant. Answer clearly and briefly."

# (instruction, input, a good answer, a worse answer). Written for this project.
ITEMS: list[tuple[str, str, str, str]] = [
    (
        "Explain what a Kubernetes Deployment does.",
        "",
        "A Deployment keeps a chosen number of identical pods running. When you change its pod template it "
        "rolls the change out gradually, replacing old pods with new ones, and it can roll back if the new "
        "version fails its health checks.",
        "It deploys things.",
    ),
    (
        "Summarise the text in one sentence.",
        "The town council met on Tuesday to discuss the new cycle lanes. After two hours of debate, members "
        "agreed to build the first section along the river next spring and to review traffic data in autumn.",
        "The council agreed to build the first riverside cycle lane next spring and to review traffic data "
        "in the autumn.",
        "The council met on Tuesday.",
    ),
    (
        "Give three tips for keeping houseplants healthy.",
        "",
        "1. Water only when the top few centimetres of soil are dry.\n2. Put each plant where the light "
        "suits it: most leafy plants like bright, indirect light.\n3. Feed them lightly in spring and summer "
        "and repot when the roots fill the pot.",
        "Water them every day and keep them in the dark.",
    ),
    (
        "Translate the sentence into French.",
        "The library opens at nine o'clock.",
        "La bibliothèque ouvre à neuf heures.",
        "Le livre est à neuf heures.",
    ),
    (
        "Write a Python function that returns the largest number in a list.",
        "",
        "def largest(numbers):\n    if not numbers:\n        raise ValueError('the list is empty')\n"
        "    best = numbers[0]\n    for n in numbers[1:]:\n        if n > best:\n            best = n\n"
        "    return best",
        "def largest(numbers):\n    return numbers[0]",
    ),
    (
        "What is the difference between weather and climate?",
        "",
        "Weather is the state of the atmosphere at a given place and time: today's rain or tomorrow's "
        "sunshine. Climate is the pattern of weather over decades, such as a region's average temperature "
        "and rainfall by season.",
        "They are the same thing.",
    ),
    (
        "Suggest a name for a bakery that specialises in sourdough.",
        "",
        "Wild Crumb Bakery: it points to the wild yeast that makes sourdough rise and to the open crumb of a "
        "good loaf.",
        "Bread Shop.",
    ),
    (
        "Classify the sentiment of the review as positive, negative or neutral.",
        "The soup arrived cold and the waiter never came back to our table.",
        "Negative. The reviewer complains about cold food and poor service.",
        "Positive.",
    ),
    (
        "Explain why the sky is blue.",
        "",
        "Sunlight contains every colour. Air molecules scatter short wavelengths much more than long ones, "
        "so blue light is scattered across the whole sky and reaches our eyes from every direction, while "
        "most red and yellow light passes straight through.",
        "Because the sea reflects onto it.",
    ),
    (
        "Rewrite the sentence in the passive voice.",
        "The committee approved the budget.",
        "The budget was approved by the committee.",
        "The committee was approving.",
    ),
    (
        "What does LoRA change when fine-tuning a language model?",
        "",
        "LoRA freezes the original weights and learns a small low-rank update for selected matrices, such as "
        "the attention projections. Only the update is trained, so memory use drops sharply and the result "
        "is a small adapter that can be merged into the base model or loaded on top of it.",
        "LoRA makes the model bigger so it learns more.",
    ),
    (
        "List the planets of the solar system in order from the Sun.",
        "",
        "Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus and Neptune.",
        "Earth, Mars, the Moon and the Sun.",
    ),
    (
        "Write a short thank-you note to a colleague who covered your shift.",
        "",
        "Hi Sam, thank you for covering my shift on Friday at such short notice. It made a difficult day much "
        "easier, and I owe you one. Let me know whenever you need a hand.",
        "Thanks.",
    ),
    (
        "Convert the temperature from Celsius to Fahrenheit.",
        "25 degrees Celsius",
        "25 °C is 77 °F: multiply by 9/5 to get 45, then add 32.",
        "25 °C is 25 °F.",
    ),
    (
        "Explain what a hash table is to a beginner.",
        "",
        "A hash table stores values under keys. It turns each key into a number with a hash function and uses "
        "that number to pick a slot, so looking a key up takes about the same time however many entries the "
        "table holds.",
        "A table made of hashes.",
    ),
    (
        "Give an example of a renewable source of energy and say why it is renewable.",
        "",
        "Wind power: the wind is driven by the Sun heating the Earth unevenly, so it keeps blowing and using "
        "it does not use it up.",
        "Coal, because there is a lot of it.",
    ),
    (
        "Correct the grammar of the sentence.",
        "Me and him goes to the market every saturdays.",
        "He and I go to the market every Saturday.",
        "Me and him go to market every saturdays.",
    ),
    (
        "What should I pack for a day hike in the mountains?",
        "",
        "Water, food, a waterproof jacket, a warm layer, sun protection, a map or offline route, a charged "
        "phone, a small first-aid kit and sturdy shoes. Check the forecast before you leave and tell someone "
        "your route.",
        "Just your phone.",
    ),
    (
        "Explain the difference between a process and a thread.",
        "",
        "A process is a running program with its own memory. A thread is a path of execution inside a "
        "process; threads of one process share its memory, which makes them cheap to start but means they "
        "must coordinate access to shared data.",
        "A thread is a small process made of string.",
    ),
    (
        "Describe how to make a cup of green tea.",
        "",
        "Heat water to about 80 °C, just below boiling. Put a teaspoon of leaves or a tea bag in a cup, pour "
        "the water over it and steep for two to three minutes, then remove the leaves so the tea does not "
        "turn bitter.",
        "Boil the tea bag for ten minutes.",
    ),
    (
        "What is a GPU and why is it used to train neural networks?",
        "",
        "A GPU is a processor with thousands of simple cores built for doing the same operation on a lot of "
        "data at once. Training a neural network is mostly large matrix multiplications, which split well "
        "across those cores, so a GPU trains much faster than a CPU.",
        "A GPU is a kind of keyboard.",
    ),
    (
        "Write a haiku about autumn rain.",
        "",
        "Cold rain on the roof\nred leaves gather in the drain\nthe kettle starts to sing",
        "Rain rain rain rain rain.",
    ),
    (
        "Name the main ingredients of a classic pancake batter.",
        "",
        "Flour, eggs, milk, a pinch of salt and a little melted butter; some recipes add sugar and baking "
        "powder for thicker pancakes.",
        "Rice and water.",
    ),
    (
        "Explain what a checkpoint is when training a model.",
        "",
        "A checkpoint is a saved snapshot of training: the model weights, the optimizer state, the learning "
        "rate schedule and the step reached. If the run stops, training resumes from the last checkpoint "
        "instead of starting again.",
        "A checkpoint is where the model stops forever.",
    ),
    (
        "Extract the date from the message.",
        "Hi all, the team dinner has moved to 14 March at 7 pm.",
        "14 March.",
        "7 pm.",
    ),
    (
        "Why do we use version control for source code?",
        "",
        "Version control records every change with its author and reason, lets several people work on the "
        "same code without overwriting one another, and makes it easy to find when a bug appeared and to go "
        "back to a version that worked.",
        "So that the code runs faster.",
    ),
    (
        "Recommend a book for someone who enjoyed a mystery set in a small village.",
        "",
        "Try a classic village mystery such as Agatha Christie's The Murder at the Vicarage: a quiet place, a "
        "closed circle of suspects and an observant narrator who notices what others miss.",
        "Read a cookbook.",
    ),
    (
        "What is the capital of Australia?",
        "",
        "Canberra. It was chosen as a compromise between Sydney and Melbourne.",
        "Sydney.",
    ),
    (
        "Explain what overfitting means in machine learning.",
        "",
        "A model overfits when it learns the training examples, noise included, instead of the pattern behind "
        "them: its training loss keeps falling while its results on new data get worse. More data, "
        "regularisation and early stopping help.",
        "Overfitting is when the model is too small.",
    ),
    (
        "Turn the list into a sentence.",
        "apples, pears, plums",
        "We bought apples, pears and plums.",
        "apples pears plums",
    ),
    (
        "How can I reduce the memory needed to fine-tune a large model?",
        "",
        "Train a LoRA adapter instead of all the weights, load the base model in 4-bit (QLoRA), turn on "
        "gradient checkpointing, use bf16, and lower the batch size while raising gradient accumulation.",
        "Buy a bigger monitor.",
    ),
    (
        "Describe the water cycle in simple terms.",
        "",
        "The Sun warms water in seas and lakes, and it evaporates. The vapour cools as it rises and condenses "
        "into clouds. The water falls as rain or snow, runs into rivers and soaks into the ground, and "
        "eventually returns to the sea to start again.",
        "Water goes up and never comes down.",
    ),
    (
        "Write a SQL query that counts the orders per customer.",
        "Table orders(id, customer_id, total)",
        "SELECT customer_id, COUNT(*) AS orders\nFROM orders\nGROUP BY customer_id;",
        "SELECT * FROM orders;",
    ),
    (
        "What is the boiling point of water at sea level?",
        "",
        "100 °C (212 °F) at standard atmospheric pressure; it is lower at altitude, where the pressure is "
        "lower.",
        "50 °C.",
    ),
    (
        "Explain what an API is with an everyday comparison.",
        "",
        "An API is like a restaurant menu: it lists what you can ask for and how to ask, and the kitchen "
        "handles the details. Programs use APIs to request data or actions from other programs without "
        "knowing how they work inside.",
        "An API is a type of insect.",
    ),
    (
        "Give two reasons why sleep is important.",
        "",
        "Sleep lets the brain consolidate memories of the day, and it gives the body time to repair tissue and "
        "regulate hormones that control appetite and mood.",
        "It passes the time.",
    ),
    (
        "Paraphrase the sentence.",
        "The meeting was postponed because of the storm.",
        "Because of the storm, the meeting was moved to a later date.",
        "The storm had a meeting.",
    ),
    (
        "What does a learning rate control during training?",
        "",
        "The learning rate sets how far the weights move on each update. Too high and the loss jumps around or "
        "diverges; too low and training crawls. Schedules often warm it up and then decay it.",
        "How fast the computer reads.",
    ),
    (
        "Suggest a vegetarian dinner that takes under thirty minutes.",
        "",
        "A chickpea and spinach curry: fry an onion with garlic and curry paste, add a tin of chickpeas and a "
        "tin of tomatoes, simmer for fifteen minutes, stir in spinach and serve with rice.",
        "A steak.",
    ),
    (
        "Explain what a container image is.",
        "",
        "A container image is a packaged file system plus settings: the program, its libraries and the "
        "command to run. Any machine with a container runtime can start identical containers from it.",
        "A picture of a shipping container.",
    ),
]

FOLLOW_UPS = [
    "Can you say that more simply?",
    "Thanks! Can you give me an example?",
    "Could you put that in one sentence?",
    "Why does that matter?",
]


def _follow_up(i: int, answer: str) -> tuple[str, str]:
    """A second user turn and a reply built from the first answer."""
    question = FOLLOW_UPS[i % len(FOLLOW_UPS)]
    first = answer.split(". ")[0].rstrip(".")
    replies = [
        f"In short: {first}.",
        f"For example: {first.lower()}, as in the case above.",
        f"{first}.",
        f"It matters because getting it wrong costs time: {first.lower()}.",
    ]
    return question, replies[i % len(replies)]


def _prompt(instruction: str, inp: str) -> str:
    return f"{instruction}\n\n{inp}" if inp else instruction


def _turn(role: str, content: str) -> Row:
    return {"role": role, "content": content}


def _parts(role: str, content: str, weight: float) -> Row:
    return {"role": role, "content": [{"type": "text", "value": content}], "loss_weight": weight}


# Arithmetic word problems (GSM8K-style): question, worked answer ending in "#### N".
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kai", "Lena"]
THINGS = ["apples", "stickers", "marbles", "books", "pencils", "cupcakes", "tickets", "shells"]


def _problems(n: int) -> list[tuple[str, str, int]]:
    rng = random.Random(15)
    out: list[tuple[str, str, int]] = []
    while len(out) < n:
        who, thing = rng.choice(NAMES), rng.choice(THINGS)
        kind = len(out) % 4
        if kind == 0:
            start, given, bought = rng.randint(20, 60), rng.randint(2, 15), rng.randint(3, 20)
            result = start - given + bought
            question = (
                f"{who} has {start} {thing}. {who} gives {given} to a friend and then buys {bought} more. "
                f"How many {thing} does {who} have now?"
            )
            answer = (
                f"After giving some away, {who} has {start} - {given} = <<{start}-{given}={start - given}>>"
                f"{start - given} {thing}.\nAfter buying more, {who} has {start - given} + {bought} = "
                f"<<{start - given}+{bought}={result}>>{result} {thing}.\n#### {result}"
            )
        elif kind == 1:
            boxes, per, price = rng.randint(2, 9), rng.randint(4, 12), rng.randint(2, 6)
            count, result = boxes * per, boxes * per * price
            question = (
                f"A shop sells {thing} in boxes of {per}. {who} buys {boxes} boxes and sells every one of the "
                f"{thing} for ${price}. How much money does {who} make?"
            )
            answer = (
                f"{who} has {boxes} * {per} = <<{boxes}*{per}={count}>>{count} {thing}.\n"
                f"Selling them makes {count} * {price} = $<<{count}*{price}={result}>>{result}.\n#### {result}"
            )
        elif kind == 2:
            per_day, days, spent = rng.randint(3, 12), rng.randint(5, 14), rng.randint(1, 20)
            total, result = per_day * days, per_day * days - spent
            question = (
                f"{who} reads {per_day} pages every day for {days} days, then loses track of {spent} pages "
                f"and has to reread them. How many new pages has {who} read?"
            )
            answer = (
                f"{who} reads {per_day} * {days} = <<{per_day}*{days}={total}>>{total} pages in all.\n"
                f"Of these, {total} - {spent} = <<{total}-{spent}={result}>>{result} are new.\n#### {result}"
            )
        else:
            groups, size = rng.randint(3, 8), rng.randint(4, 9)
            extra = rng.randint(1, size - 1)
            total = groups * size + extra
            result = groups
            question = (
                f"There are {total} {thing}. {who} puts them into bags of {size}. How many full bags does "
                f"{who} make?"
            )
            answer = (
                f"{total} divided by {size} is {groups} with {extra} left over, since {groups} * {size} = "
                f"<<{groups}*{size}={groups * size}>>{groups * size}.\nSo {who} makes {groups} full bags.\n"
                f"#### {result}"
            )
        if question not in {q for q, _, _ in out}:
            out.append((question, answer, result))
    return out


# Tool calls: (tool schema, user request, arguments, observation, final answer).
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
    {
        "name": "convert_currency",
        "description": "Convert an amount between two currencies at today's rate",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number"},
                "from": {"type": "string"},
                "to": {"type": "string"},
            },
            "required": ["amount", "from", "to"],
        },
    },
    {
        "name": "find_train",
        "description": "The next direct trains between two stations",
        "parameters": {
            "type": "object",
            "properties": {"origin": {"type": "string"}, "destination": {"type": "string"}},
            "required": ["origin", "destination"],
        },
    },
]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Krakow", "Perth", "Quebec", "Seville", "Tallinn"]
CURRENCIES = [("EUR", "USD", 1.08), ("GBP", "EUR", 1.17), ("USD", "JPY", 151.2), ("CHF", "EUR", 1.04)]


def _tool_conversation(i: int, rng: random.Random) -> tuple[list[Row], list[dict[str, Any]]]:
    """A ShareGPT conversation with one tool call, and the tools offered."""
    kind = i % 3
    city, other = CITIES[i % len(CITIES)], CITIES[(i * 3 + 1) % len(CITIES)]
    if kind == 0:
        temp = rng.randint(-5, 33)
        greeting = "Hi! I'm planning my day." if i % 2 == 0 else "Hello, quick question about the weather."
        turns = [
            ("human", greeting),
            ("gpt", "Happy to help. Which city are you in?"),
            ("human", f"I'm in {city}. What's the weather like right now?"),
            ("function_call", {"name": "get_weather", "arguments": {"city": city, "unit": "C"}}),
            ("observation", {"city": city, "temperature": temp, "unit": "C", "sky": "cloudy"}),
            ("gpt", f"It is {temp} °C and cloudy in {city} at the moment."),
        ]
    elif kind == 1:
        src, dst, rate = CURRENCIES[i % len(CURRENCIES)]
        amount = rng.randint(2, 90) * 10
        result = round(amount * rate, 2)
        turns = [
            ("human", f"How much is {amount} {src} in {dst}?"),
            (
                "function_call",
                {"name": "convert_currency", "arguments": {"amount": amount, "from": src, "to": dst}},
            ),
            ("observation", {"amount": result, "currency": dst, "rate": rate}),
            ("gpt", f"{amount} {src} is about {result} {dst} at today's rate of {rate}."),
        ]
    else:
        hour = rng.randint(6, 20)
        turns = [
            ("human", f"When is the next train from {city} to {other}?"),
            ("function_call", {"name": "find_train", "arguments": {"origin": city, "destination": other}}),
            ("observation", {"trains": [{"departs": f"{hour:02d}:15"}, {"departs": f"{hour + 1:02d}:45"}]}),
            (
                "gpt",
                f"The next direct trains from {city} to {other} leave at {hour:02d}:15 and {hour + 1:02d}:45.",
            ),
        ]
    conversation = [
        {"from": who, "value": value if isinstance(value, str) else json.dumps(value)} for who, value in turns
    ]
    return conversation, TOOLS if i % 2 == 0 else [TOOLS[kind]]


def alpaca() -> list[Row]:
    """instruction / input / output: the hand-written items, then arithmetic problems."""
    rows = [{"instruction": ins, "input": inp, "output": good} for ins, inp, good, _ in ITEMS]
    for question, answer, _ in _problems(20):
        rows.append({"instruction": "Solve the word problem.", "input": question, "output": answer})
    return rows


def text() -> list[Row]:
    """Plain text documents of a few paragraphs; one in ten is long (over 1024 tokens), as web text has."""
    rows = []
    for i in range(40):
        picked = [ITEMS[(i + k * 7) % len(ITEMS)] for k in range(30 if i % 10 == 9 else 3)]
        title = picked[0][0].rstrip(".?")
        body = "\n".join(good for _, _, good, _ in picked)
        rows.append({"text": f"Notes, part {i + 1}: {title}\n{body}"})
    return rows


def sharegpt() -> list[Row]:
    """ShareGPT `conversations` of {from, value} turns, two exchanges, with a `system` column."""
    rows = []
    for i, (ins, inp, good, _) in enumerate(ITEMS):
        question, reply = _follow_up(i, good)
        turns = [("human", _prompt(ins, inp)), ("gpt", good), ("human", question), ("gpt", reply)]
        rows.append({"conversations": [{"from": f, "value": v} for f, v in turns], "system": SYSTEM})
    return rows


def sharegpt_tools() -> list[Row]:
    """ShareGPT conversations with `function_call` and `observation` turns and a `tools` JSON string."""
    rng = random.Random(7)
    rows = []
    for i in range(40):
        conversation, tools = _tool_conversation(i, rng)
        rows.append({"conversations": conversation, "tools": json.dumps(tools)})
    return rows


def messages_tools() -> list[Row]:
    """`messages` with assistant `tool_calls` and `tool` turns, and a `tools` column of JSON schemas: the
    shape TRL's SFT reads for tool calling (the same conversations as ``sharegpt_tools``)."""
    rng = random.Random(7)
    rows = []
    for i in range(40):
        conversation, tools = _tool_conversation(i, rng)
        turns: list[Row] = []
        called = ""
        for turn in conversation:
            who, value = turn["from"], turn["value"]
            if who == "function_call":
                call = json.loads(value)
                called = call["name"]
                function = {"name": called, "arguments": call["arguments"]}
                turns.append(
                    {"role": "assistant", "tool_calls": [{"type": "function", "function": function}]}
                )
            elif who == "observation":
                turns.append({"role": "tool", "name": called, "content": value})
            else:
                turns.append(_turn("user" if who == "human" else "assistant", value))
        schemas = [{"type": "function", "function": tool} for tool in tools]
        rows.append({"messages": turns, "tools": schemas})
    return rows


def sharegpt_preference() -> list[Row]:
    """ShareGPT preference: `conversations` plus a `chosen` and a `rejected` {from, value} turn."""
    return [
        {
            "conversations": [{"from": "human", "value": _prompt(ins, inp)}],
            "chosen": {"from": "gpt", "value": good},
            "rejected": {"from": "gpt", "value": bad},
        }
        for ins, inp, good, bad in ITEMS
    ]


def messages() -> list[Row]:
    """Conversational `messages` ({role, content}), some with a system turn or a second exchange."""
    rows = []
    for i, (ins, inp, good, _) in enumerate(ITEMS):
        turns = [_turn("system", SYSTEM)] if i % 3 == 0 else []
        turns += [_turn("user", _prompt(ins, inp)), _turn("assistant", good)]
        if i % 2:
            question, reply = _follow_up(i, good)
            turns += [_turn("user", question), _turn("assistant", reply)]
        rows.append({"messages": turns})
    return rows


def content_parts() -> list[Row]:
    """`messages` whose content is a list of {type, value} parts, with a per-turn `loss_weight`."""
    rows = []
    for i, (ins, inp, good, _) in enumerate(ITEMS):
        turns = [_parts("system", SYSTEM, 0.0)] if i % 4 == 3 else []
        turns += [_parts("user", _prompt(ins, inp), 0.0), _parts("assistant", good, 1.0)]
        rows.append({"messages": turns})
    return rows


def prompt_completion() -> list[Row]:
    """Standard (string) `prompt` / `completion`."""
    return [{"prompt": _prompt(ins, inp), "completion": good} for ins, inp, good, _ in ITEMS]


def preference_explicit() -> list[Row]:
    """Standard preference with an explicit prompt: `prompt`, `chosen`, `rejected` strings."""
    return [{"prompt": _prompt(ins, inp), "chosen": good, "rejected": bad} for ins, inp, good, bad in ITEMS]


def preference_implicit() -> list[Row]:
    """Conversational preference with the prompt implicit: `chosen`/`rejected` are whole conversations."""
    rows = []
    for ins, inp, good, bad in ITEMS:
        user = _turn("user", _prompt(ins, inp))
        rows.append({"chosen": [user, _turn("assistant", good)], "rejected": [user, _turn("assistant", bad)]})
    return rows


def message_pairs() -> list[Row]:
    """`chosen_messages` / `rejected_messages`: two full conversations in content parts."""
    rows = []
    for ins, inp, good, bad in ITEMS[:24]:
        head = [_parts("system", SYSTEM, 0.0), _parts("user", _prompt(ins, inp), 0.0)]
        rows.append(
            {
                "chosen_messages": [*head, _parts("assistant", good, 1.0)],
                "rejected_messages": [*head, _parts("assistant", bad, 1.0)],
            }
        )
    return rows


def question_answer() -> list[Row]:
    """GSM8K-style `question` / `answer`, the worked answer ending in `#### N`."""
    return [{"question": q, "answer": a} for q, a, _ in _problems(60)]


def unpaired_preference() -> list[Row]:
    """KTO's unpaired preference: `prompt`, `completion` and a boolean `label` (good or bad answer)."""
    rows = []
    for i, (ins, inp, good, bad) in enumerate(ITEMS):
        label = i % 3 != 2
        rows.append({"prompt": _prompt(ins, inp), "completion": good if label else bad, "label": label})
    return rows


def messages_label() -> list[Row]:
    """Conversational `messages` with a boolean `label` (LLaMA-Factory's KTO shape)."""
    rows = []
    for i, (ins, inp, good, bad) in enumerate(ITEMS):
        label = i % 2 == 0
        turns = [_turn("user", _prompt(ins, inp)), _turn("assistant", good if label else bad)]
        rows.append({"messages": turns, "label": label})
    return rows


def prompts() -> list[Row]:
    """GRPO prompts only: a `prompt` and the reference `answer` the Accuracy reward compares against."""
    return [
        {"prompt": f"{q} Give the final number after ####.", "answer": str(n)}
        for q, _, n in _problems(60)[:30]
    ]


FILES: dict[str, Callable[[], list[Row]]] = {
    "alpaca.json": alpaca,
    "text.jsonl": text,
    "sharegpt.json": sharegpt,
    "sharegpt_tools.json": sharegpt_tools,
    "sharegpt_preference.json": sharegpt_preference,
    "messages.jsonl": messages,
    "messages_tools.jsonl": messages_tools,
    "content_parts.jsonl": content_parts,
    "prompt_completion.jsonl": prompt_completion,
    "preference_explicit.jsonl": preference_explicit,
    "preference_implicit.jsonl": preference_implicit,
    "message_pairs.jsonl": message_pairs,
    "question_answer.jsonl": question_answer,
    "unpaired_preference.jsonl": unpaired_preference,
    "messages_label.json": messages_label,
    "prompts.jsonl": prompts,
}
"""Every file, by name: `.json` files are JSON arrays (as LLaMA-Factory ships them), `.jsonl` JSON Lines."""


def render(name: str) -> str:
    """The text of one file."""
    rows = FILES[name]()
    if name.endswith(".jsonl"):
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return json.dumps(rows, ensure_ascii=False, indent=1) + "\n"


def build(folder: Path = DATASETS) -> list[Path]:
    """Write every file into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in FILES:
        path = folder / name
        path.write_text(render(name), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in build():
        print(written.relative_to(Path.cwd()) if written.is_relative_to(Path.cwd()) else written)
