// SPDX-License-Identifier: MIT
// The devnet's stand-in for GMX v2's Reader: no registry ships GMX bytecode, so this small contract exposes the
// same read ABI (getAccountPositions, getMarket: tests/devnet checks it against shared/interfaces/gmx-v2) over
// positions that the devnet seeds directly. Storage is keyed by the data store passed in, as the real reads are.
pragma solidity ^0.8.19;

interface DataStore {}

library Position {
    struct Addresses {
        address account;
        address market;
        address collateralToken;
    }

    struct Numbers {
        uint256 sizeInUsd;
        uint256 sizeInTokens;
        uint256 collateralAmount;
        int256 pendingImpactAmount;
        uint256 borrowingFactor;
        uint256 fundingFeeAmountPerSize;
        uint256 longTokenClaimableFundingAmountPerSize;
        uint256 shortTokenClaimableFundingAmountPerSize;
        uint256 increasedAtTime;
        uint256 decreasedAtTime;
    }

    struct Flags {
        bool isLong;
    }

    struct Props {
        Addresses addresses;
        Numbers numbers;
        Flags flags;
    }
}

library Market {
    struct Props {
        address marketToken;
        address indexToken;
        address longToken;
        address shortToken;
    }
}

contract DevnetGmxReader {
    mapping(DataStore => mapping(address => Position.Props[])) private positions;
    mapping(DataStore => mapping(address => Market.Props)) private markets;

    function setMarket(DataStore dataStore, Market.Props calldata market) external {
        markets[dataStore][market.marketToken] = market;
    }

    function addPosition(DataStore dataStore, Position.Props calldata position) external {
        positions[dataStore][position.addresses.account].push(position);
    }

    function getMarket(DataStore dataStore, address key) external view returns (Market.Props memory) {
        return markets[dataStore][key];
    }

    // Pages like the real Reader: [start, end) clipped to the account's position count.
    function getAccountPositions(
        DataStore dataStore,
        address account,
        uint256 start,
        uint256 end
    ) external view returns (Position.Props[] memory) {
        Position.Props[] storage all = positions[dataStore][account];
        if (end > all.length) {
            end = all.length;
        }
        if (start >= end) {
            return new Position.Props[](0);
        }
        Position.Props[] memory page = new Position.Props[](end - start);
        for (uint256 i = start; i < end; i++) {
            page[i - start] = all[i];
        }
        return page;
    }
}
