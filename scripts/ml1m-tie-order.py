# MovieLens-1M with RecBole's order of same-second ratings, from the original ratings.dat (UserID::MovieID::Rating::Timestamp),
# for the users that file holds: each user's movies sorted by timestamp with a stable sort (ties keep ratings.dat's line
# order, as RecBole's sort of ml-1m.inter does); every other user keeps the order of ../shared/data/ml-1m's sequences (whose
# ties are in an arbitrary order). Output: the `pairs` format (`UserID MovieID`, users ascending), gzip. Checks that every
# user's movies agree with the sequences file as multisets, and prints how many users' test / validation items move.
#   python3 scripts/ml1m-tie-order.py RATINGS_DAT SEQUENCES_GZ OUT_GZ     (docs/recommendation.md, "The order of ties")
import collections, gzip, sys

ratings, sequences, out = sys.argv[1:4]
original = collections.defaultdict(list)
with open(ratings, encoding="latin-1") as f:
    for n, line in enumerate(f, 1):
        fields = line.rstrip("\n").split("::")
        if len(fields) != 4:
            sys.exit(f"{ratings}:{n}: expected UserID::MovieID::Rating::Timestamp, found {line[:60]!r}")
        if not all(fields[i].isdigit() for i in (0, 1, 3)):
            sys.exit(f"{ratings}:{n}: expected whole numbers for UserID, MovieID and Timestamp, found {line[:60]!r}")
        original[int(fields[0])].append((int(fields[3]), int(fields[1])))
ours = collections.defaultdict(list)
with gzip.open(sequences, "rt") as f:
    for n, line in enumerate(f, 1):
        fields = line.split()
        if len(fields) != 2 or not all(x.isdigit() for x in fields):
            sys.exit(f"{sequences}:{n}: expected 'UserID MovieID', found {line[:60]!r}")
        ours[int(fields[0])].append(int(fields[1]))
moved_test = moved_valid = 0
with gzip.open(out, "wt") as f:
    for user in sorted(ours):
        seq = ours[user]
        if user in original:
            stable = [movie for _, movie in sorted(original[user], key=lambda tm: tm[0])]   # Python's sort is stable
            if sorted(stable) != sorted(seq):
                sys.exit(f"user {user}: ratings.dat and {sequences} hold different movies")
            moved_test += stable[-1] != seq[-1]
            moved_valid += stable[-2] != seq[-2]
            seq = stable
        f.writelines(f"{user} {movie}\n" for movie in seq)
print(f"{len(original)} users from {ratings} in its order of ties; of them, the test item moves for {moved_test}, "
      f"the validation item for {moved_valid}; {len(ours) - len(original)} users as in {sequences}")
