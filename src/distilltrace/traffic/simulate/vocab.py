"""Topic, task and phrasing vocabularies written for the simulator (no downloaded data sets).

Every list here was written for distilltrace. Campaign and benign vocabularies overlap on
purpose (students also ask for step-by-step explanations, evaluation harnesses also say
"think step by step", labelling companies also ask for grades), so that a detector cannot
separate the two populations by one phrase.
"""

from __future__ import annotations

# --- topics -------------------------------------------------------------------------------

TOPIC_TERMS: dict[str, list[str]] = {
    "cooking": [
        "sourdough starter",
        "sous vide",
        "a roux",
        "braising",
        "fermented hot sauce",
        "meal prep",
        "cast iron seasoning",
        "risotto",
        "tempering chocolate",
        "a vegan lasagna",
        "pickling vegetables",
        "knife sharpening",
    ],
    "travel": [
        "a rail pass in Europe",
        "travel insurance",
        "jet lag",
        "a two-week Japan itinerary",
        "hostels vs hotels",
        "visa on arrival",
        "packing light",
        "a road trip in Patagonia",
        "airport lounges",
        "travelling with a toddler",
        "a budget trip to Lisbon",
    ],
    "health": [
        "intermittent fasting",
        "sleep hygiene",
        "a beginner running plan",
        "vitamin D",
        "lower back pain",
        "strength training after 40",
        "hydration",
        "a migraine diary",
        "stretching routines",
        "blood pressure readings",
    ],
    "personal_finance": [
        "an emergency fund",
        "index funds",
        "a Roth IRA",
        "compound interest",
        "a household budget",
        "paying off credit cards",
        "a mortgage refinance",
        "dollar-cost averaging",
        "a sinking fund",
        "tax brackets",
    ],
    "law": [
        "a tenancy deposit dispute",
        "an NDA",
        "small claims court",
        "a non-compete clause",
        "GDPR consent",
        "a will",
        "copyright fair use",
        "an employment contract",
        "a trademark search",
    ],
    "history": [
        "the fall of Constantinople",
        "the Meiji restoration",
        "the printing press",
        "the Hanseatic League",
        "the Silk Road",
        "the Marshall Plan",
        "the Congress of Vienna",
        "the Bronze Age collapse",
        "the Haitian revolution",
    ],
    "science": [
        "photosynthesis",
        "plate tectonics",
        "CRISPR",
        "black holes",
        "entropy",
        "the immune system",
        "quantum entanglement",
        "ocean acidification",
        "the Krebs cycle",
        "exoplanet detection",
    ],
    "marketing": [
        "a newsletter launch",
        "SEO for a bakery",
        "a product launch email",
        "customer personas",
        "A/B testing a landing page",
        "an Instagram content plan",
        "a referral programme",
        "brand voice guidelines",
    ],
    "career": [
        "a salary negotiation",
        "a career change into data analysis",
        "a performance review",
        "a cover letter",
        "a portfolio website",
        "a job interview for a nursing role",
        "asking for a promotion",
    ],
    "home": [
        "a leaking tap",
        "repotting a monstera",
        "a small balcony garden",
        "choosing a heat pump",
        "painting a kitchen cabinet",
        "mould in the bathroom",
        "a compost bin",
        "soundproofing a home office",
    ],
    "parenting": [
        "toddler tantrums",
        "a bedtime routine",
        "screen time rules",
        "a birthday party for an 8 year old",
        "learning to ride a bike",
        "homework help for a 10 year old",
    ],
    "pets": [
        "crate training a puppy",
        "a cat that scratches furniture",
        "aquarium cycling",
        "a senior dog's diet",
        "introducing two cats",
    ],
    "writing": [
        "a fantasy villain",
        "dialogue tags",
        "a short story opening",
        "a haiku",
        "a wedding toast",
        "a eulogy",
        "a children's book about a brave snail",
    ],
    "programming": [
        "Python decorators",
        "React hooks",
        "SQL joins",
        "Rust lifetimes",
        "Docker volumes",
        "git rebase",
        "async/await in JavaScript",
        "Kubernetes readiness probes",
        "pandas groupby",
        "REST vs GraphQL",
        "unit testing with pytest",
        "regular expressions",
        "CSS grid",
        "memory leaks in Node.js",
        "type hints in Python",
    ],
    "math": [
        "the chain rule",
        "eigenvalues",
        "Bayes' theorem",
        "modular arithmetic",
        "integration by parts",
        "the central limit theorem",
        "linear regression",
        "proof by induction",
        "complex numbers",
        "the binomial distribution",
    ],
    "business": [
        "a SWOT analysis",
        "a business plan for a food truck",
        "unit economics",
        "a pricing page",
        "OKRs",
        "a board update",
        "churn analysis",
        "a supplier contract",
    ],
    "language": [
        "the subjunctive in Spanish",
        "Japanese particles",
        "German cases",
        "French pronunciation",
        "Mandarin tones",
        "English phrasal verbs",
    ],
    "sports": [
        "a 5k training plan",
        "the offside rule",
        "a home workout",
        "choosing a road bike",
        "improving a tennis serve",
        "a marathon taper",
    ],
}

# global popularity of topics in ordinary traffic (same order as TOPIC_TERMS)
TOPIC_WEIGHTS: dict[str, float] = {
    "cooking": 4,
    "travel": 4,
    "health": 5,
    "personal_finance": 4,
    "law": 2,
    "history": 3,
    "science": 4,
    "marketing": 4,
    "career": 4,
    "home": 3,
    "parenting": 2,
    "pets": 2,
    "writing": 6,
    "programming": 14,
    "math": 6,
    "business": 5,
    "language": 3,
    "sports": 2,
}

QUESTION_TEMPLATES = [
    "What is the difference between {term} and {term2}?",
    "Can you explain {term} in simple terms?",
    "How does {term} actually work?",
    "Give me a short overview of {term}.",
    "what are common mistakes people make with {term}",
    "Is {term} worth it for someone who is {persona}?",
    "I'm {persona}. Where should I start with {term}?",
    "pros and cons of {term}?",
    "Explain {term} like I'm five.",
    "Quick question: is it true that {term} and {term2} are related?",
    "I keep reading about {term}. Why does everyone care about it?",
    "What would you recommend to learn about {term} in a weekend?",
    "{term} vs {term2} - which one should I pick?",
    "Help me understand {term}, I have a meeting about it tomorrow",
    "Can you give me three examples of {term}?",
    "Write a short FAQ about {term}.",
    "how do i get better at {term}",
    "Tell me something surprising about {term}.",
]

PERSONAS = [
    "a complete beginner",
    "a busy parent",
    "a retired teacher",
    "a college student",
    "a nurse working night shifts",
    "a small business owner",
    "a software engineer",
    "new to the country",
    "on a tight budget",
    "a high school student",
    "a freelance designer",
    "recovering from an injury",
]

WRITING_TEMPLATES = [
    "Write a {tone} {doc} to {recipient} about {subject}.",
    "Draft a {doc} for {recipient}. It's about {subject}. Keep it {tone}.",
    "Can you help me write a {doc}? Recipient: {recipient}. Topic: {subject}. Tone: {tone}.",
    "I need a {tone} {doc} about {subject}, addressed to {recipient}, under {k} words.",
    "Please write a {doc} about {subject}",
]
TONES = [
    "friendly",
    "formal",
    "polite but firm",
    "warm",
    "concise",
    "enthusiastic",
    "apologetic",
    "professional",
    "casual",
    "persuasive",
]
DOCS = [
    "email",
    "cover letter",
    "LinkedIn post",
    "text message",
    "thank-you note",
    "complaint letter",
    "speech",
    "newsletter intro",
    "product description",
    "poem",
    "short story",
    "toast",
    "resignation letter",
    "meeting agenda",
]
RECIPIENTS = [
    "my landlord",
    "my manager",
    "a client",
    "the school principal",
    "my team",
    "a hiring manager",
    "my neighbours",
    "customer support",
    "my grandmother",
    "the city council",
    "our investors",
    "a new colleague",
]
SUBJECTS = [
    "a delayed shipment",
    "the broken heating",
    "a schedule change",
    "my promotion",
    "a fundraising event",
    "our quarterly results",
    "a refund request",
    "the new office policy",
    "a surprise party",
    "a late payment",
    "my last day",
    "the product launch",
    "noise at night",
    "a volunteering day",
]

SUMMARY_TEMPLATES = [
    "Summarize the following {doctype} in {k} bullet points:\n\n{passage}",
    "tl;dr this please: {passage}",
    "Can you shorten this {doctype} for a busy reader?\n{passage}",
    "Give me the key takeaways from this {doctype}: {passage}",
]
DOCTYPES = [
    "article",
    "email thread",
    "meeting notes",
    "report",
    "blog post",
    "paper abstract",
    "policy document",
    "transcript",
]
SENTENCES = [
    "The committee met on Tuesday to review the proposed budget.",
    "Several members raised concerns about the timeline.",
    "Revenue grew by {k} percent compared with the previous quarter.",
    "The new library opens to the public next month.",
    "Researchers found that participants slept better after reducing screen time.",
    "The vendor has agreed to extend the warranty by {k} months.",
    "Customer complaints about delivery times fell sharply in spring.",
    "The team will migrate the database over the weekend.",
    "Local farmers report a late harvest because of the cold spell.",
    "Ticket prices will rise for the first time in {k} years.",
    "The study followed {k} households over two winters.",
    "Most respondents preferred the shorter onboarding flow.",
    "The council postponed the vote until more data is available.",
    "Attendance at the workshop exceeded expectations.",
    "Engineers traced the outage to an expired certificate.",
    "The museum acquired a collection of early photographs.",
]

TRANSLATE_TEMPLATES = [
    "Translate to {lang}: {sentence}",
    'How do you say "{sentence}" in {lang}?',
    "Please translate this into {lang}, keep it natural: {sentence}",
]
LANGS = [
    "Spanish",
    "French",
    "German",
    "Japanese",
    "Portuguese",
    "Italian",
    "Korean",
    "Dutch",
    "Polish",
    "Turkish",
    "Hindi",
    "Indonesian",
    "Swahili",
    "Vietnamese",
]
SHORT_SENTENCES = [
    "Where is the nearest train station?",
    "Thank you for your patience.",
    "The meeting has been moved to Thursday.",
    "I would like a table for two.",
    "Please find the invoice attached.",
    "Can you recommend a good dentist?",
    "Our flight was cancelled.",
    "Happy birthday, I hope you have a great day!",
    "The package will arrive tomorrow.",
    "I'm allergic to peanuts.",
]

BRAINSTORM_TEMPLATES = [
    "Give me {k} ideas for {thing}.",
    "brainstorm {k} names for {thing}",
    "I need creative ideas for {thing}. Go wild.",
    "List {k} unusual ways to approach {thing}.",
]
THINGS = [
    "a team offsite",
    "a bakery",
    "a podcast about gardening",
    "a birthday gift for my dad",
    "a science fair project",
    "a rainy weekend with kids",
    "a mobile app for runners",
    "a fundraiser for the animal shelter",
    "a blog about budget travel",
    "a board game night",
    "a youtube channel about woodworking",
    "a wedding theme",
]

REWRITE_TEMPLATES = [
    "Rewrite this to sound more {tone}: {sentence}",
    "Make this clearer: {sentence}",
    "Fix the grammar: {sentence}",
    'Can you rephrase this so it sounds {tone}? "{sentence}"',
]

ADVICE_TEMPLATES = [
    "I'm feeling {feeling} about {situation}. Any advice?",
    "How should I handle {situation}? I'm a bit {feeling}.",
    "My friend is {feeling} about {situation}, what can I say to help?",
]
FEELINGS = ["anxious", "overwhelmed", "excited but nervous", "stuck", "frustrated", "unsure"]
SITUATIONS = [
    "starting a new job",
    "moving abroad",
    "a difficult conversation with my sister",
    "my exams next week",
    "a breakup",
    "public speaking",
    "going back to school",
    "buying my first flat",
    "a conflict with a coworker",
]

# --- coding -------------------------------------------------------------------------------

LANGUAGES = [
    "Python",
    "JavaScript",
    "TypeScript",
    "Java",
    "Go",
    "Rust",
    "C++",
    "C#",
    "SQL",
    "Kotlin",
    "Swift",
    "Ruby",
    "PHP",
    "Bash",
]
CODING_HELP_TEMPLATES = [
    "How do I {coding_task} in {language}?",
    "Why does this {language} code throw {error}?\n```\n{snippet}\n```",
    "Write a {language} function that {spec}.",
    "what's the idiomatic way to {coding_task} in {language}",
    "Can you review this {language} snippet?\n```\n{snippet}\n```",
    "I'm getting {error} when I try to {coding_task}. Using {language}. Help?",
    "Convert this to {language}:\n```\n{snippet}\n```",
    "Explain what this code does:\n```\n{snippet}\n```",
]
CODING_TASKS = [
    "read a CSV file",
    "parse JSON from an API",
    "sort a list of objects by date",
    "retry a failed HTTP request",
    "remove duplicates from a list",
    "connect to Postgres",
    "write a unit test",
    "debounce a function",
    "reverse a linked list",
    "hash a password",
    "paginate query results",
    "upload a file to S3",
    "format a date",
    "handle timezones",
    "profile slow code",
    "spawn a background job",
    "validate an email address",
    "merge two dicts",
]
ERRORS = [
    "a KeyError",
    "a NullPointerException",
    "TypeError: undefined is not a function",
    "a segmentation fault",
    "IndexError: list index out of range",
    "a borrow checker error",
    "a deadlock",
    "CORS errors",
    "ModuleNotFoundError",
    "an off-by-one error",
    "a stack overflow",
]
SNIPPETS = [
    "for i in range(len(items)):\n    if items[i] = target:\n        return i",
    "const data = await fetch(url).json()",
    "SELECT name, COUNT(*) FROM orders GROUP BY customer_id",
    "def avg(xs):\n    return sum(xs) / len(xs)",
    "let v = vec![1, 2, 3];\nlet first = &v[0];\nv.push(4);",
    "while True:\n    line = f.readline()\n    process(line)",
    "public int size() { return this.items.size; }",
    "df.groupby('user').agg({'amount': 'sum'}).sort('amount')",
    "if (user.age > 18) { allow() } else if (user.age > 18) { deny() }",
]
FUNCTION_SPECS = [
    "checks whether a string is a palindrome",
    "returns the n-th Fibonacci number",
    "flattens a nested list",
    "counts word frequencies in a text",
    "merges overlapping intervals",
    "validates a credit card number with Luhn",
    "finds the longest common prefix of a list of strings",
    "converts Roman numerals to integers",
    "computes a moving average over a window",
    "groups anagrams together",
    "rotates a matrix by 90 degrees",
    "parses a query string into a dict",
]

# --- math ---------------------------------------------------------------------------------

MATH_TEMPLATES = [
    "Solve for x: {a}x + {b} = {c}",
    "A shop sells pencils at {a} cents each. How much do {b} pencils cost?",
    "What is {a} percent of {c}?",
    "If a train travels {c} km in {a} hours, what is its average speed?",
    "What is the derivative of x^{a} + {b}x?",
    "Find the area of a rectangle with sides {a} cm and {b} cm.",
    "Simplify {a}/{c} as a fraction.",
    "A recipe needs {a} eggs for {b} people. How many eggs for {c} people?",
    "integrate {a}x^2 dx",
    "what is the probability of rolling a sum of {a} with two dice",
    "Is {c} a prime number?",
    "My kid's homework: {a} + {b} x {a} = ? is it {c}?",
]

# phrases that ask for step-by-step explanations in ordinary traffic (students, tutors, curious users)
BENIGN_STEP_PHRASES = [
    " Please explain step by step.",
    " Can you show your work?",
    " Explain the steps please.",
    " I don't get how to do it, can you walk me through it?",
    " show the steps",
    " Explain how you got the answer.",
    " step by step pls",
    " Explain your reasoning.",
]

# --- hard cases: enterprise templates, labelling rubrics, evaluation harness formats ------

ENTERPRISE_TEMPLATES = [
    "Classify the customer message into one of [billing, shipping, returns, technical, other]. "
    "Respond with the label only.\n\nMessage: {ticket}",
    "Extract the following fields as JSON (order_id, product, issue, sentiment) from the support "
    "email below.\n---\n{ticket}\n---",
    "You write product listings. Product: {product}. Key features: {feature}; {feature2}. "
    "Write a 60-word description in a {tone} voice.",
    "Translate the following customer review into English and rate its sentiment from 1 to 5.\n"
    "Review: {ticket}",
    "Summarise this call-centre transcript in two sentences for the CRM note.\n{ticket}",
]
TICKETS = [
    "Hi, my order #{k} arrived damaged, the box was crushed.",
    "I was charged twice for my subscription this month.",
    "The app keeps logging me out every few minutes since the update.",
    "Can I return shoes I bought {k} days ago if I wore them once?",
    "Where is my parcel? Tracking hasn't updated in a week.",
    "Your technician was great, problem solved, thanks!",
    "I want to cancel my plan but the button doesn't work.",
    "The invoice shows the wrong company address.",
    "My discount code {k} is not accepted at checkout.",
    "The replacement part doesn't fit model {k}.",
]
PRODUCTS = [
    "insulated water bottle",
    "standing desk",
    "wireless earbuds",
    "hiking boots",
    "espresso grinder",
    "yoga mat",
    "kids' raincoat",
    "LED desk lamp",
    "air purifier",
]
FEATURES = [
    "lightweight",
    "recycled materials",
    "two-year warranty",
    "USB-C charging",
    "machine washable",
    "quiet motor",
    "fits in a backpack",
    "adjustable height",
]

LABEL_RUBRIC_TEMPLATES = [
    "You are assisting a human annotator. Rate the RESPONSE to the PROMPT on a 1-5 scale for "
    "helpfulness, correctness and tone, following the rubric.\nRubric: 5 = fully correct and "
    "helpful; 3 = partially correct; 1 = wrong or unsafe.\nPROMPT: {inner}\nRESPONSE: {inner2}\n"
    'Return JSON: {{"helpfulness": int, "correctness": int, "tone": int, "note": str}}',
    "Annotation task {k}. Compare response A and response B for the user request below and pick "
    "the better one according to guideline v{a}. Explain briefly.\nRequest: {inner}\nA: {inner2}\n"
    "B: {inner3}",
    "Check this answer against the style guide (no jargon, under 100 words, cites a source). "
    "List each violation.\nAnswer: {inner2}",
    "Label the intent of this user query (question, task, chit-chat, complaint, other) and flag "
    "any personal data.\nQuery: {inner}",
]

HARNESS_FORMATS = [
    "Question: {item}\nLet's think step by step.",
    "Solve the following problem. Think step by step and put your final answer within \\boxed{{}}.\n\n{item}",
    "Q: {item}\nA: Let's think step by step.",
    "{item}\n\nReason step by step, then give the final answer on the last line as 'Answer: <value>'.",
    "Complete the following function. Think through the algorithm first, then output the code.\n\n{item}",
]

# --- app templates for small developer integrations and resellers ------------------------

APP_TEMPLATES = [
    "Generate a short, catchy title for a blog post about {term}.",
    "Write three tweet variations announcing {thing}.",
    "Summarize: {passage}",
    "Given this job description, list the top 5 skills: {passage}",
    "Answer the user's question using the context.\nContext: {passage}\nQuestion: {question}",
    "Convert this note into a todo list: {passage}",
    "You are a friendly tutor bot. Student asks: {question}",
    "Write SQL for: {question}",
]

# --- campaign vocabularies ----------------------------------------------------------------

MATH_SWEEP_TEMPLATES = [
    "Let f(x) = {a}x^3 - {b}x + {c}. Find all real x with f'(x) = 0.",
    "How many positive integers below {big} are divisible by {a} or {b} but not both?",
    "A bag has {a} red and {b} blue marbles. Three are drawn without replacement. What is the "
    "probability that exactly two are red?",
    "Find the remainder when {a}^{big} is divided by {c}.",
    "Solve the system: {a}x + {b}y = {c}, {b}x - {a}y = {d}.",
    "A rectangle's perimeter is {big} and its length is {a} more than its width. Find its area.",
    "Compute the sum of the first {big} terms of the arithmetic sequence starting at {a} with "
    "difference {b}.",
    "In triangle ABC, AB = {a}, BC = {b}, and angle B = {angle} degrees. Find AC.",
    "Find the number of lattice paths from (0,0) to ({a},{b}) that avoid the point ({c},{d}).",
    "Evaluate the integral of x^{a} e^(-{b}x) from 0 to infinity.",
    "Prove or disprove: for all n > {a}, n^2 + {b}n + {c} is composite.",
    "A worker finishes a job in {a} days and another in {b} days. How long working together?",
    "What is the expected number of rolls of a fair {c}-sided die to see every face?",
    "Find the smallest positive integer n such that {a}n is congruent to {b} modulo {big}.",
    "A loan of {big} dollars at {a}% annual interest compounded monthly: balance after {b} years?",
]
CODE_SWEEP_TASKS = [
    "implement an LRU cache with O(1) get and put",
    "find the k-th largest element in a stream",
    "serialise and deserialise a binary tree",
    "compute edit distance between two strings",
    "detect a cycle in a directed graph",
    "implement Dijkstra's algorithm with a heap",
    "merge k sorted linked lists",
    "solve the N-queens problem for n = {a}",
    "parse and evaluate an arithmetic expression with parentheses",
    "implement a trie with prefix counting",
    "find strongly connected components",
    "compute the longest increasing subsequence",
    "implement a token-bucket rate limiter",
    "write a thread-safe bounded queue",
    "implement union-find with path compression",
    "find the minimum window substring",
    "schedule tasks with dependencies (topological sort)",
    "implement a consistent-hashing ring",
    "count islands in a {a}x{b} grid",
    "implement an interval tree",
    "write a JSON tokenizer",
    "design a sparse matrix type",
]
CODE_SWEEP_CONSTRAINTS = [
    "",
    " in O(n log n) time",
    " without recursion",
    " using only the standard library",
    " with full type annotations",
    " and include unit tests",
    " handling inputs up to {big} elements",
    " with O(1) extra space",
    " and analyse its complexity",
]
AGENT_GOALS = [
    "plan a {a}-day trip to {city} within a budget of {big} dollars",
    "find the three cheapest suppliers of {product} and email a summary to procurement",
    "debug why the nightly ETL job failed and open a ticket",
    "compute last quarter's revenue per region from the sales database",
    "reschedule all meetings that conflict with a flight on day {a}",
    "collect the latest prices for {product} and write them to prices.csv",
    "summarise the error logs in /var/log/app and propose a fix",
    "migrate the users table to add an email_verified column safely",
    "monitor {product} stock and alert when it drops below {b} units",
]
CITIES = ["Lisbon", "Osaka", "Nairobi", "Toronto", "Krakow", "Lima", "Hanoi", "Tbilisi", "Perth"]
CAMPAIGN_SYSTEM_PROMPTS = [
    "You are an expert problem solver. Always reason thoroughly.",
    "You are a world-class mathematician and programmer.",
    "Respond as a meticulous assistant who explains everything.",
    "You are a senior engineer. Think before you write code.",
    "",
]
BENIGN_SYSTEM_PROMPTS = [
    "",
    "",
    "",
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer concisely.",
    "You are a customer support assistant for an online store.",
    "You are a friendly tutor for high school students.",
]
